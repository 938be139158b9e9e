"""Slot activity: ask the Portfolio workflow for a trade slot (MAX_TRADES is global).

Workflows cannot send Updates to other workflows, so this activity does it. The update is
idempotent on the decision id, so a retried activity is granted the same slot.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client, WorkflowUpdateStage
from temporalio.common import WorkflowIDConflictPolicy

from trader import contracts as c


class PortfolioActivities:
    def __init__(self, client: Client, *, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    @activity.defn(name=c.ACQUIRE_SLOT)
    async def acquire_slot(self, inp: c.AcquireSlotInput) -> c.SlotGrant:
        # Start the Portfolio if nobody has yet (idempotent: the running one is reused).
        handle = await self.client.start_workflow(
            "Portfolio",
            c.PortfolioInput(max_trades=inp.max_trades),
            id=inp.portfolio_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        update = await handle.start_update(
            "acquire", inp.request, wait_for_stage=WorkflowUpdateStage.COMPLETED,
            result_type=c.SlotGrant,
        )
        return await update.result()
