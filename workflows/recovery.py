"""ERROR: back off, then reconcile with the exchange and resume in the right phase.

Safety change from the seed: ERROR never assumes IDLE. It asks the exchange about the last
order (by its client order id) and resumes in WAIT_FILL / WAIT_SELL_FILL when it is still
open, POSITION when something is held, POST_TRADE when the exit completed meanwhile, and
IDLE only when flat.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from trader import contracts as c
    from trader.core.fills import recovery_trigger
    from trader.core.phases import Trigger
    from trader.core.rules import exit_levels
    from workflows.base import TraderBase, error_message


class RecoveryPhases(TraderBase):
    def backoff_seconds(self) -> float:
        p = self.inp.params
        exponent = max(self.state.retry_count - 1, 0)
        return float(min(p.fsm_backoff_base_seconds * 2**exponent, p.fsm_backoff_max_seconds))

    async def _error(self) -> None:
        s = self.state
        s.error_count += 1
        s.retry_count += 1
        self._notify("error", f"{s.symbol} in ERROR: {s.last_error}")
        await workflow.sleep(self.backoff_seconds())
        if s.market is None:  # failed during warm-up: nothing can be held yet
            self._transition(Trigger.RETRY_WARMUP, "retrying warm-up")
            return
        try:
            rec = await self._exchange_call(c.RECONCILE, c.ReconcileInput(
                symbol=s.symbol, client_order_id=s.client_order_id, base=s.market.base,
            ), c.ReconcileResult, summary=f"reconcile {s.symbol}")
        except ActivityError as err:
            s.last_error = error_message(err)
            self._transition(Trigger.FAILED, f"reconcile failed: {s.last_error}")
            return
        s.current_price = rec.ticker.last
        trigger = recovery_trigger(s, rec.order, s.market, rec.ticker.last,
                                   self.inp.params.sell_fill_threshold)
        note = f"reconciled: {trigger.value}"
        if trigger is Trigger.RECOVERED_FLAT:
            if s.amount > 0:  # only dust was bought
                await self._record_dust(s.amount, rec.ticker.last, "buy dust (recovered)")
            self._release_slot()
            s.clear_trade()
        elif trigger is Trigger.RECOVERED_POSITION and s.entry_ts == 0:
            s.entry_ts = workflow.time()  # the buy filled while we were down
            s.peak_price = s.entry_price
            s.tp_px, s.sl_px = exit_levels(s.entry_price, self.inp.params)
        elif trigger in (Trigger.RECOVERED_BUY_OPEN, Trigger.RECOVERED_SELL_OPEN):
            self._last_order = rec.order
        self._transition(trigger, note)
