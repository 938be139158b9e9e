"""ERROR: back off, then reconcile with the exchange and resume in the right phase.

Safety change from the seed: ERROR never assumes IDLE. It asks the exchange about the last
order (by its client order id) and the base balance, and resumes in WAIT_FILL /
WAIT_SELL_FILL when the order is still open, POSITION when something sellable is held (a
standing exit resumes at once), POST_TRADE when the exit completed meanwhile, and IDLE only
when flat. What the account no longer holds is written off and reported; what cannot be
sold is carried as inventory. The backoff doubles with every consecutive failure (10 s, 20 s,
40 s ... 300 s) and starts over only after a success; a force exit cuts it short.
"""

from __future__ import annotations

import contextlib

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from trader import contracts as c
    from trader.core.fills import apply_fill, recovery_trigger
    from trader.core.inventory import join_inventory
    from trader.core.market import OrderSide, OrderStatus
    from trader.core.messages import format_in_error
    from trader.core.phases import Trigger
    from trader.core.rules import ExitRulesState, exit_levels
    from workflows.base import ERROR_WINDOW_PATCH, error_message
    from workflows.before_reality import BeforeReality
    from workflows.holdings import Holdings


class RecoveryPhases(Holdings, BeforeReality):
    async def _reconcile_or_fail(self, summary: str) -> c.ReconcileResult | None:
        """The exchange's view of the last order and the balance; None (and ERROR again,
        backing off) when it cannot be had."""
        s = self.state
        try:
            return await self._reconcile(
                client_order_id=s.trade.order.client_order_id,
                expect=s.remaining + s.inventory.amount,
                summary=summary,
            )
        except ActivityError as err:
            s.last_error = error_message(err)
            self._transition(Trigger.FAILED, f"reconcile failed: {s.last_error}")
            return None

    def _last_sent(self) -> float:
        # The latest the trade's order may have been sent: when the order phase gave up
        # into ERROR (this phase's start, in state: the same after a restart), or the
        # decision (``placed_ts``) if later; nothing is sent in ERROR itself.
        s = self.state
        return max(s.trade.order.placed_ts, s.phase_since)

    async def _confirmed(self, rec: c.ReconcileResult, asked: float) -> c.ReconcileResult | None:
        """``rec`` (asked for at ``asked``) if its "not found" proves the order absent, else
        the answer of a second look once the consistency window has passed; None (and
        ERROR again) when that look fails.

        Not found is no proof of absence: an order query can miss a fresh order. It counts
        as never placed only when asked after the window since the order was last sent:
        the order phase may have retried its create until it gave up into ERROR, long after
        the decision. Runs recorded before the patch count from the decision and compare
        with the answer's arrival."""
        s, window = self.state, self.inp.params.order_consistency_window_seconds
        if workflow.patched(ERROR_WINDOW_PATCH):
            closes = self._last_sent() + window
        else:
            closes, asked = s.trade.order.placed_ts + window, workflow.time()
        if asked >= closes:
            return rec
        if (wait := closes - workflow.time()) > 0:  # until then nothing is written off
            await workflow.sleep(wait)
        return await self._reconcile_or_fail(f"look up {s.trade.order.client_order_id} again")

    async def _error(self) -> None:
        s, p = self.state, self.inp.params
        s.error_count += 1
        s.retry_count += 1
        self._notify("error", format_in_error(symbol=s.symbol, error=s.last_error))
        # A fresh force exit skips this wait (once: if the sell keeps failing, the next
        # ERROR backs off as usual, or a persistent refusal would spin).
        with contextlib.suppress(TimeoutError):  # the backoff ran out: reconcile now
            await workflow.wait_condition(
                lambda: s.trade.force_exit_fresh, timeout=self.backoff_seconds()
            )
        s.trade.force_exit_fresh = False
        if s.market is None:  # failed during warm-up: nothing can be held yet
            self._transition(Trigger.RETRY_WARMUP, "retrying warm-up")
            return
        asked = workflow.time()  # the exchange is asked after this
        rec = await self._reconcile_or_fail(f"reconcile {s.symbol}")
        if rec is not None and rec.order is None and s.trade.order.client_order_id:
            rec = await self._confirmed(rec, asked)
        if rec is None:
            return
        order = rec.order
        if order is None or order.status is not OrderStatus.OPEN:
            if order is not None:
                apply_fill(s, order)  # a delta: what was counted stays counted once
            if s.trade.order.side is OrderSide.BUY and s.trade.entry_ts == 0 and s.trade.amount > 0:
                join_inventory(s)  # before the dust check: together they may be sellable
            await self._cover(rec.base_balance, "found in ERROR")
        trigger = recovery_trigger(
            s, order, s.market, s.bid, p.sell_fill_threshold, sell_remainder=True
        )
        note = f"reconciled: {trigger.value}"
        if trigger is Trigger.RECOVERED_FLAT:
            if s.trade.order.side is OrderSide.BUY:  # an entry that came to nothing, as in IDLE:
                s.entry_watch.anchor = s.current_price  # the next one needs a fresh drop
                s.entry_watch.window = []
            if s.trade.amount > 0:  # only dust was held: on the books, carried as inventory
                await self._book_unsellable()
                note += f"; {s.trade.amount} below the market minimum carried as inventory"
            self._release_slot()
            s.clear_trade()
        elif trigger is Trigger.RECOVERED_POSITION and s.trade.entry_ts == 0:
            s.trade.entry_ts = workflow.time()  # the buy filled while we were down
            s.trade.exits = ExitRulesState.opened(s.trade.entry_price)
            s.trade.tp_px, s.trade.sl_px = exit_levels(s.trade.entry_price, p)
        elif trigger in (Trigger.RECOVERED_BUY_OPEN, Trigger.RECOVERED_SELL_OPEN):
            self._last_order = order
        if trigger is Trigger.RECOVERED_POSITION and s.trade.exit_reason:
            note += f"; the {s.trade.exit_reason} exit stands"
        self._transition(trigger, note)
