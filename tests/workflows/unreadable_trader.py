"""Stand-in SymbolTraders: one whose ``state`` query fails, one that answers it while a
worker serves it (a module of their own: the workflow sandbox re-imports it)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from trader.core.phases import Phase
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


@workflow.defn(name="SymbolTrader")
class IdleTrader:
    """A running SymbolTrader that answers ``state`` (flat, IDLE) while a worker serves its
    queue: stopping that worker leaves it Running with nobody to answer, as an FSM shadow
    that is down leaves its SymbolTraders."""

    @workflow.init
    def __init__(self, symbol: str) -> None:
        self.symbol = symbol

    @workflow.run
    async def run(self, symbol: str) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.query(name="state")
    def state(self) -> CoinState:
        return CoinState(symbol=self.symbol, phase=Phase.IDLE)
