"""The legacy engine's per-symbol plumbing: transitions (saved, then published as phase
events), exchange calls, orders placed once, and the trade's books."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from trader import contracts as c
from trader.core import ids
from trader.core.errors import REJECTION_TYPES, ErrorType, ExchangeError
from trader.core.inventory import (
    InventoryMove,
    carried_move,
    close_books,
    cover,
    trade_pnl,
    uncovered,
)
from trader.core.market import Balance, Order, OrderRequest, OrderSide, Ticker
from trader.core.phases import SUCCESS_TRIGGERS, Trigger
from trader.core.pnl import TradePnL
from trader.core.rules import (
    EntryRecheck,
    ExitReason,
    ExitRulesState,
    exit_levels,
)
from trader.core.state import CoinState
from trader.exchange.balance import settled_balance
from trader.legacy.orders import place_once, retrying
from trader.legacy.store import LedgerRow
from trader.observe.events import transition_event

if TYPE_CHECKING:
    from trader.legacy.engine import LegacyEngine

log = logging.getLogger(__name__)

_POLL_S = 0.5


class RunnerBase:
    def __init__(self, engine: LegacyEngine, state: CoinState, *, exit_only: bool = False) -> None:
        self.e, self.s, self.p = engine, state, engine.params
        self.exit_only = exit_only
        """Not in the watchlist: what it holds is settled, no new entry is made."""
        self.done = False
        """An exit-only symbol with nothing left: no longer traded."""
        self._ticker: Ticker | None = None  # the entry's ticker (lost on restart: re-watch)
        self._sma: Decimal | None = None
        self._last_order: Order | None = None
        self._max_hold_due = False
        self.wf_id = f"legacy:{state.exchange}:{ids.symbol_slug(state.symbol)}"
        self._pending: list[LedgerRow] = []
        """Ledger rows made since the last save (the trade closed, inventory moved):
        committed with the state that made them, then written from the store's outbox, so
        a down database never holds up the symbol nor loses a row, and a restart never
        writes one twice (ids from the trade's decision id, the state's ``ledger_seq``)."""
        self._notes: list[tuple[str, str, str]] = []
        """Notifications decided since the last save: (kind, text, key), sent after it."""

    # --- plumbing --------------------------------------------------------------------------
    def save(self) -> None:
        """Commit the state, and with it the ledger rows it made; then write those, then
        send the notifications it decided (their keys are in the saved state)."""
        pending, self._pending = self._pending, []
        notes, self._notes = self._notes, []
        self.e.store.save(self.s, pending)
        self.e.write_ledger(pending)
        for kind, text, key in notes:
            self.e.notify(kind, text, key=key)

    def notify(self, kind: str, text: str) -> None:
        """Decide a notification: sent after the next save, keyed on the lineage and the
        saved ``notify_seq``, so a crash before the save decides it again under the same
        key and one after it finds it sent (the notifier's sent-log)."""
        s = self.s
        s.notify_seq += 1
        self._notes.append((kind, text, ids.notification_key(self.wf_id, s.lineage, s.notify_seq)))

    def transition(
        self, trigger: Trigger, note: str = "", *, trade: tuple[str, TradePnL] | None = None
    ) -> None:
        s, since = self.s, self.s.phase_since
        record = s.apply_transition(
            trigger, now=time.time(), note=note, history_limit=self.p.phase_history_limit
        )
        if trigger in SUCCESS_TRIGGERS:
            s.retry_count = 0
        self.save()
        self.e.sink.publish(
            transition_event(
                s,
                record,
                src_since=since,
                trade=trade,
                simulated=s.simulated,
                workflow_id=self.wf_id,
                run_id=f"{self.wf_id}:{s.lineage}",
                engine="legacy",
            )
        )

    async def call(self, fn: Callable[[], Awaitable[Order]]) -> Order:
        return await retrying(self.p, fn)

    def see(self, ticker: Ticker) -> None:
        self.s.current_price, self.s.bid = ticker.last, ticker.bid

    def abandon_entry(
        self, trigger: Trigger, note: str, *, keep_drop: EntryRecheck = EntryRecheck.NONE
    ) -> None:
        """Back to IDLE without a trade (as ``EntryPhases._abandon_entry``): a blocked drop
        stands; anything else needs a fresh drop from the current price."""
        s = self.s
        s.clear_trade()
        if keep_drop:
            s.entry_watch.recheck = keep_drop
            note = f"{note}; the drop stands"
        else:
            s.entry_watch.anchor = s.current_price
            s.entry_watch.window = []
        self._ticker = None
        self.transition(trigger, note)

    async def _place(
        self, request: OrderRequest, offset: Decimal | None, *, resumed: bool
    ) -> Order | None:
        """The order placed (or found); None after a rejection was handled."""
        s = self.s
        attempts = {"n": 0}
        # The consistency window counts from the last moment an earlier attempt may have
        # sent its create: the end of the attempt before (after a restart: now, as the
        # last process may have retried until it died), never from the decision.
        sent_by = {"ts": time.time() if resumed else s.trade.order.placed_ts}

        async def attempt() -> Order:
            attempts["n"] += 1
            try:
                return await place_once(
                    self.e.exchange,
                    self.e.hub,
                    self.p,
                    request=request,
                    limit_offset_bps=offset,
                    placed_ts=s.trade.order.placed_ts,  # the lists are read from here
                    sent_ts=sent_by["ts"],
                    resumed=resumed or attempts["n"] > 1,
                )
            finally:
                sent_by["ts"] = time.time()

        try:
            return await self.call(attempt)
        except ExchangeError as exc:
            if exc.error_type not in REJECTION_TYPES:
                raise  # outcome unknown: ERROR reconciles by the client order id
            s.last_error = str(exc)
            if request.side is OrderSide.BUY:
                self.abandon_entry(Trigger.ORDER_REJECTED, f"buy rejected: {exc}")
                return None
            s.trade.sell_attempt += 1
            s.trade.order.client_order_id = None  # refused: never placed
            if (
                exc.error_type is ErrorType.INVALID_ORDER
                and s.trade.sell_rejections < self.p.fsm_max_retries
            ):
                s.trade.sell_rejections += 1
                self.transition(Trigger.ORDER_REJECTED, f"sell rejected: {exc}")
            else:
                self.transition(Trigger.FAILED, f"sell failed: {exc}")
            return None

    async def _settle(
        self, timeout_s: float, *, until: Callable[[], bool] = lambda: False
    ) -> Order:
        """The current order in a final state: polled until the phase timeout, then cancelled."""
        s = self.s
        coid = s.trade.order.client_order_id or ""
        placed, self._last_order = self._last_order, None
        if placed is not None and placed.is_final:
            return placed
        deadline = s.trade.order.placed_ts + timeout_s
        while time.time() < deadline and not until():
            order = await self.call(lambda: self.e.exchange.fetch_order(s.symbol, coid))
            if order.is_final:
                return order
            await asyncio.sleep(_POLL_S)
        return await self.call(lambda: self.e.exchange.cancel_order(s.symbol, coid))

    def _open(self) -> None:
        s = self.s
        s.trade.entry_ts = time.time()
        s.trade.exits = ExitRulesState.opened(s.trade.entry_price)
        s.trade.tp_px, s.trade.sl_px = exit_levels(s.trade.entry_price, self.p)

    def _book(self, *, closes_trade: bool = True) -> tuple[str, TradePnL]:
        """Move the trade's totals into the state, its ledger row committed with them (the
        next save: the transition that closes the trade)."""
        s = self.s
        pnl = trade_pnl(s)
        trade_id = s.trade.decision_id or f"{s.symbol}:{s.lineage}:orphan{s.order_seq}"
        record = c.TradeRecord.closing(
            s,
            pnl,
            trade_id=trade_id,
            closed_ts=time.time(),
            simulated=s.simulated,
            engine="legacy",
        )
        self._pending.append(record)
        self._report(carried_move(s, pnl))
        close_books(s, pnl, closes_trade=closes_trade)
        return trade_id, pnl

    def _book_unsellable(self) -> None:
        s = self.s
        s.trade.exit_reason = s.trade.exit_reason or ExitReason.UNSELLABLE
        entered = s.trade.entry_ts > 0
        s.trade.entry_ts = s.trade.entry_ts or time.time()
        self._book(closes_trade=entered)

    # --- what the account holds against the books (as ``workflows/holdings.py``) --------
    def _report(self, move: InventoryMove | None) -> None:
        """An inventory row (written with the next save) and its notification."""
        if move is None:
            return
        s = self.s
        s.ledger_seq += 1  # the id comes from state only: the same after a restart
        self._pending.append(
            c.InventoryRecord.of(s, move, ts=time.time(), simulated=s.simulated, engine="legacy")
        )
        if move.notice:
            self.notify(move.notice_kind, move.notice)

    async def _balance(self, expect: Decimal) -> Balance:
        """The base balance, read again while below ``expect`` (balance_settle_seconds)."""
        s = self.s
        assert s.market is not None
        base = s.market.base
        return await retrying(
            self.p,
            lambda: settled_balance(
                self.e.exchange,
                base,
                expect=expect,
                settle_seconds=self.p.balance_settle_seconds,
                symbol=s.symbol,
                logger=log,
            ),
        )

    async def _cover(self, total: Decimal, why: str) -> None:
        """Write off what the account's total balance does not cover, inventory first, on
        a confirming second read against what is held now (a write-off is never undone)."""
        s = self.s
        if uncovered(s, total) <= 0:
            return
        held = s.remaining if s.holds_position else Decimal(0)
        confirmed = await self._balance(held + s.inventory.amount)
        for move in cover(s, confirmed.total, why):
            self._report(move)
