"""A stand-in SymbolTrader whose ``state`` query fails (a module of its own: the workflow
sandbox re-imports it)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from trader.core.state import CoinState


@workflow.defn(name="SymbolTrader")
class UnreadableTrader:
    """A running SymbolTrader whose ``state`` query fails (as on a worker that cannot
    answer it): started with the search attributes a real one has."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.query(name="state")
    def state(self) -> CoinState:
        raise ApplicationError("state cannot be read")
