"""One symbol of the legacy engine: the 12 phases as plain asyncio code over the pure core.

The decisions are the workflows' (``workflows/entry_phases.py``, ``exit_phases.py``,
``recovery.py``), made by the same ``trader.core`` functions; only the plumbing differs: the
state is saved to SQLite (``StateStore``) on every transition and before every order is
sent, and a restart resumes the symbol in its saved phase.
"""

from __future__ import annotations

import logging

from trader.core.errors import BadSymbol, ExchangeError
from trader.core.fills import apply_fill, recovery_trigger
from trader.core.inventory import join_inventory
from trader.core.market import OrderSide, OrderStatus
from trader.core.messages import format_in_error
from trader.core.params import backoff_seconds
from trader.core.phases import Phase, Trigger
from trader.legacy.entry import EntryPhases
from trader.legacy.exit import ExitPhases
from trader.legacy.orders import find_confirmed

log = logging.getLogger(__name__)

#: Where an exit-only symbol (not in the watchlist) stops: nothing of a trade is left.
_SETTLED = frozenset({Phase.WARMUP, Phase.IDLE, Phase.ENTRY_EVAL, Phase.COOLDOWN})


class SymbolRunner(EntryPhases, ExitPhases):
    """One symbol: its phase handlers in a loop, ERROR's recovery here."""

    async def run(self) -> None:
        handlers = {
            Phase.WARMUP: self.warmup,
            Phase.IDLE: self.idle,
            Phase.ENTRY_EVAL: self.entry_eval,
            Phase.PLACE_BUY: self.place_buy,
            Phase.WAIT_FILL: self.wait_fill,
            Phase.POSITION: self.position,
            Phase.EXIT_EVAL: self.exit_eval,
            Phase.PLACE_SELL: self.place_sell,
            Phase.WAIT_SELL_FILL: self.wait_sell_fill,
            Phase.POST_TRADE: self.post_trade,
            Phase.COOLDOWN: self.cooldown,
            Phase.ERROR: self.error,
        }
        while not self._settled():
            if await self.quiet_turn():
                return  # stopped by the operator
            try:
                await handlers[self.s.phase]()
            except BadSymbol:
                raise  # a configuration error: nothing is held yet, fail loudly
            except ExchangeError as exc:  # retries exhausted or refused: back off, reconcile
                self.s.last_error = str(exc) or type(exc).__name__
                self.transition(Trigger.FAILED, f"{self.s.phase.value} failed: {self.s.last_error}")

    def _settled(self) -> bool:
        """An exit-only symbol whose trade is over: no entry follows; it stops (its row stays
        in the state, inventory included, and is resumed once it is in the watchlist)."""
        s = self.s
        if not self.exit_only or s.phase not in _SETTLED:
            return False
        if s.phase is Phase.ENTRY_EVAL:
            s.clear_trade()  # a decision without an order: dropped, no entry
        left = f"; inventory {s.inventory.amount} carried" if s.has_inventory else ""
        s.note = f"exit only: not in the watchlist, nothing held{left}; no longer traded"
        log.warning("%s: %s", s.symbol, s.note)
        self.save()
        self.done = True
        return True

    # --- error -----------------------------------------------------------------------------
    async def error(self) -> None:
        """Back off (doubling), then reconcile with the exchange by the client order id and
        resume where the exchange says (as ``workflows/recovery.py``)."""
        s, p = self.s, self.p
        # Not found is no proof of absence until the consistency window has passed since
        # the order was last sent: the order phase may have retried its create until it
        # fell into ERROR (this phase's start, saved: the same after a restart), long after
        # the decision (``placed_ts``). Nothing is sent in ERROR itself.
        sent_by = max(s.trade.order.placed_ts, s.phase_since)
        s.error_count += 1
        s.retry_count += 1
        self.notify("error", format_in_error(symbol=s.symbol, error=s.last_error))
        self.save()
        # A fresh force exit cuts the wait short (once: the next ERROR backs off as usual).
        await self.nap(backoff_seconds(s.retry_count, p), lambda: s.trade.force_exit_fresh)
        s.trade.force_exit_fresh = False
        if s.market is None:
            self.transition(Trigger.RETRY_WARMUP, "retrying warm-up")
            return
        coid = s.trade.order.client_order_id
        order = (
            await find_confirmed(
                self.e.exchange, p, s.symbol, coid, s.trade.order.placed_ts, sent_ts=sent_by
            )
            if coid
            else None
        )
        self.see(await self.e.hub.ticker(s.symbol))
        if order is None or order.status is not OrderStatus.OPEN:
            if order is not None:
                apply_fill(s, order)  # a delta: what was counted stays counted once
            if s.trade.order.side is OrderSide.BUY and s.trade.entry_ts == 0 and s.trade.amount > 0:
                join_inventory(s)  # before the dust check: together they may be sellable
            balance = await self._balance(s.remaining + s.inventory.amount)
            await self._cover(balance.total, "found in ERROR")
        trigger = recovery_trigger(
            s, order, s.market, s.bid, p.sell_fill_threshold, sell_remainder=True
        )
        note = f"reconciled: {trigger.value}"
        if trigger is Trigger.RECOVERED_FLAT:
            if s.trade.order.side is OrderSide.BUY:
                s.entry_watch.anchor = s.current_price
                s.entry_watch.window = []
            if s.trade.amount > 0:
                self._book_unsellable()
            s.clear_trade()
        elif trigger is Trigger.RECOVERED_POSITION and s.trade.entry_ts == 0:
            self._open()
        elif trigger in (Trigger.RECOVERED_BUY_OPEN, Trigger.RECOVERED_SELL_OPEN):
            self._last_order = order
        self.transition(trigger, note)
