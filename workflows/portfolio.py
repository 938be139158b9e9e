"""The Portfolio workflow: the global MAX_TRADES slot limit, durable across workers.

SymbolTraders acquire a slot through the ``acquire_slot`` activity before placing a buy and
release it by signal when the trade is over. Each worker's ``SlotBroker`` coalesces its
concurrent requests into one ``acquire_many`` Update, so the Portfolio sees a few Updates
in flight whatever the number of symbols (Temporal refuses more than 10 per workflow);
``acquire`` (one request per Update) stays for activities of older releases. Grants and
releases are idempotent on the decision id, so retries and replays never take or free a
slot twice.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from trader.contracts import (
        PortfolioInput,
        SlotBatch,
        SlotBatchResult,
        SlotGrant,
        SlotRequest,
    )


@workflow.defn(name="Portfolio")
class Portfolio:
    @workflow.init
    def __init__(self, inp: PortfolioInput) -> None:
        self.max_trades = inp.max_trades
        self.slots: dict[str, str] = dict(inp.slots)

    @workflow.run
    async def run(self, inp: PortfolioInput) -> None:
        await workflow.wait_condition(lambda: workflow.info().is_continue_as_new_suggested())
        # The handlers are synchronous: nothing is half-granted here. An Update that reaches
        # the closing run is aborted by the server and retried by the broker on the new run;
        # a signal that races the continue-as-new makes the server retry the task with it.
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(PortfolioInput(max_trades=self.max_trades, slots=self.slots))

    def _grant(self, req: SlotRequest) -> SlotGrant:
        granted = req.decision_id in self.slots or len(self.slots) < self.max_trades
        if granted:
            self.slots[req.decision_id] = req.symbol
        return SlotGrant(granted=granted, in_use=len(self.slots), max_trades=self.max_trades)

    @workflow.update
    def acquire(self, req: SlotRequest) -> SlotGrant:
        """One request per Update (the ``acquire_slot`` activity of older releases)."""
        return self._grant(req)

    @workflow.update
    def acquire_many(self, batch: SlotBatch) -> SlotBatchResult:
        """Grant in request order up to MAX_TRADES; a decision already holding a slot (a
        retried activity, or the same decision twice in the batch) gets it again."""
        return SlotBatchResult(grants=[self._grant(req) for req in batch.requests])

    @workflow.signal
    def release(self, decision_id: str) -> None:
        self.slots.pop(decision_id, None)

    @workflow.signal
    def set_max_trades(self, max_trades: int) -> None:
        # Lowering the limit never revokes granted slots; it only stops new grants.
        self.max_trades = max(0, max_trades)

    @workflow.query
    def current_slots(self) -> dict[str, str]:
        return dict(self.slots)

    @workflow.query
    def free_slots(self) -> int:
        """Slots a new entry could get now (watches waiting for one poll this)."""
        return max(self.max_trades - len(self.slots), 0)
