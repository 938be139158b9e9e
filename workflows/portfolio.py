"""The Portfolio workflow: the global MAX_TRADES slot limit, durable across workers.

SymbolTraders acquire a slot through the ``acquire_slot`` activity before placing a buy and
release it by signal when the trade is over. Each worker's ``SlotBroker`` coalesces its
concurrent requests into one ``acquire_many`` Update, so the Portfolio sees a few Updates
in flight whatever the number of symbols (Temporal refuses more than 10 per workflow);
``acquire`` (one request per Update) stays for activities of older releases. Grants and
releases are idempotent on the decision id, so retries and replays never take or free a
slot twice.

A request can arrive late: an ``acquire_slot`` attempt that timed out lives on for a few
seconds on its worker while the next attempt asks elsewhere. So the Portfolio remembers the
final answers for ``ANSWER_TTL_S`` (a released or refused decision is refused again), and
refuses any request after the end of its activity attempt (``expires_at``): a late request
never takes a slot nobody will release (docs/architecture.md, "Late slot requests").
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

ANSWER_TTL_S = 600.0
"""How long a released or refused decision stays refused. A request lives at most one
activity attempt (ORDER_ACTIVITY_TIMEOUT_SECONDS, 15 s) plus ~5 s until its worker cancels
it, plus an Update's round trip (the broker gives up on one after 30 s): 10 minutes is far
beyond twice that, and ``expires_at`` refuses older requests of this release anyway."""


@workflow.defn(name="Portfolio")
class Portfolio:
    @workflow.init
    def __init__(self, inp: PortfolioInput) -> None:
        self.max_trades = inp.max_trades
        self.slots: dict[str, str] = dict(inp.slots)
        self.closed: dict[str, float] = dict(inp.closed)

    @workflow.run
    async def run(self, inp: PortfolioInput) -> None:
        await workflow.wait_condition(lambda: workflow.info().is_continue_as_new_suggested())
        # The handlers are synchronous: nothing is half-granted here. An Update that reaches
        # the closing run is aborted by the server and retried by the broker on the new run;
        # a signal that races the continue-as-new makes the server retry the task with it.
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._forget_old_answers()
        workflow.continue_as_new(
            PortfolioInput(max_trades=self.max_trades, slots=self.slots, closed=self.closed)
        )

    def _grant(self, req: SlotRequest) -> SlotGrant:
        now, d = workflow.now().timestamp(), req.decision_id
        expired = d not in self.slots and req.expires_at is not None and now >= req.expires_at
        granted = d in self.slots or (
            not expired and d not in self.closed and len(self.slots) < self.max_trades
        )
        if granted:
            self.slots[d] = req.symbol
        elif not expired:
            # Final: the trader abandons the entry, and its next one has a new decision id.
            self.closed.setdefault(d, now)
        return SlotGrant(
            granted=granted, in_use=len(self.slots), max_trades=self.max_trades, expired=expired
        )

    def _forget_old_answers(self) -> None:
        horizon = workflow.now().timestamp() - ANSWER_TTL_S
        self.closed = {d: t for d, t in self.closed.items() if t > horizon}

    @workflow.update
    def acquire(self, req: SlotRequest) -> SlotGrant:
        """One request per Update (the ``acquire_slot`` activity of older releases)."""
        return self._grant(req)

    @workflow.update
    def acquire_many(self, batch: SlotBatch) -> SlotBatchResult:
        """Grant in request order up to MAX_TRADES; a decision already holding a slot (a
        retried activity, or the same decision twice in the batch) gets it again."""
        self._forget_old_answers()
        return SlotBatchResult(grants=[self._grant(req) for req in batch.requests])

    @workflow.signal
    def release(self, decision_id: str) -> None:
        """Free the slot, and refuse the decision from now on (a late request for it)."""
        self.slots.pop(decision_id, None)
        self.closed[decision_id] = workflow.now().timestamp()

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
