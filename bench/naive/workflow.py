"""NaiveTrader: poll with a timer, one activity per tick (the design the watch replaced)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from bench.naive import contracts as n
    from trader.core.market import Order, OrderSide

_TIMEOUT = timedelta(seconds=10)


@workflow.defn(name="NaiveTrader")
class NaiveTrader:
    @workflow.run
    async def run(self, inp: n.NaiveInput) -> None:
        state = inp.state
        while not workflow.info().is_continue_as_new_suggested():
            state = await (
                self._flat(inp, state) if state.holding is None else self._held(inp, state)
            )
            await workflow.sleep(inp.tick_s)
        workflow.continue_as_new(inp.model_copy(update={"state": state}))

    async def _flat(self, inp: n.NaiveInput, state: n.NaiveState) -> n.NaiveState:
        tick = await workflow.execute_activity(
            n.ENTRY_TICK,
            n.EntryTickInput(symbol=inp.symbol, params=inp.params, state=state.entry),
            result_type=n.EntryTickResult,
            start_to_close_timeout=_TIMEOUT,
        )
        state = state.model_copy(update={"entry": tick.state})
        if not tick.fired:
            return state
        order = await self._place(
            inp,
            state,
            n.PlaceInput(
                symbol=inp.symbol,
                side=OrderSide.BUY,
                client_order_id="",
                budget=inp.params.trade_budget,
            ),
        )
        state = state.model_copy(update={"orders": state.orders + 1})
        if order is None or order.filled <= 0 or order.average is None:
            return state
        holding = n.Holding(
            amount=order.filled - order.fee_base,
            entry_price=order.average,
            entry_ts=workflow.now().timestamp(),
        )
        return state.model_copy(update={"holding": holding})

    async def _held(self, inp: n.NaiveInput, state: n.NaiveState) -> n.NaiveState:
        assert state.holding is not None
        tick = await workflow.execute_activity(
            n.EXIT_TICK,
            n.ExitTickInput(symbol=inp.symbol, params=inp.params, holding=state.holding),
            result_type=n.ExitTickResult,
            start_to_close_timeout=_TIMEOUT,
        )
        holding = state.holding.model_copy(update={"rules": tick.rules})
        if not tick.fired:
            return state.model_copy(update={"holding": holding})
        order = await self._place(
            inp,
            state,
            n.PlaceInput(
                symbol=inp.symbol, side=OrderSide.SELL, client_order_id="", amount=holding.amount
            ),
        )
        left = holding.amount - (order.filled if order is not None else 0)
        kept = holding.model_copy(update={"amount": left}) if left > 0 else None
        return state.model_copy(update={"orders": state.orders + 1, "holding": kept})

    async def _place(
        self, inp: n.NaiveInput, state: n.NaiveState, order: n.PlaceInput
    ) -> Order | None:
        # The client id is derived in the workflow (in history before the order is sent).
        cid = f"{workflow.info().workflow_id}:{state.orders}"
        try:
            placed: Order = await workflow.execute_activity(
                n.PLACE,
                order.model_copy(update={"client_order_id": cid}),
                result_type=Order,
                start_to_close_timeout=_TIMEOUT,
            )
        except ActivityError:  # refused: stay as we are
            return None
        return placed
