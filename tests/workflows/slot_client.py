"""A stand-in for a SymbolTrader's ENTRY_EVAL: one ``acquire_slot`` per workflow.

Used by the slot tests and bench/slots.py to fire many concurrent slot requests through
the real activity, the real broker and the real Portfolio, without a market. Run as a
module it is a worker in a process of its own; with ``--die-on-grant`` it SIGKILLs itself
the instant its first slot is granted, before any answer reaches the server (the test of a
worker killed mid-grant: the Portfolio holds the slot, the client never heard)::

    python -m tests.workflows.slot_client TARGET TASK_QUEUE [--die-on-grant]
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from trader import contracts as c
    from workflows.entry_phases import local_slot_attempt


class ClientResult(BaseModel):
    grant: c.SlotGrant
    latency_s: float
    """From scheduling the activity to its result, on the workflow's clock."""
    local: bool = False
    """Answered by the local attempt (granted or all slots in use)."""


@workflow.defn(name="SlotClient")
class SlotClient:
    @workflow.run
    async def run(
        self, inp: c.AcquireSlotInput, task_queue: str | None = None, local_first: bool = False
    ) -> ClientResult:
        """``task_queue``: where the activity runs (the slot queue, as SymbolTrader's since
        the slot-wait patch); None: this workflow's. ``local_first``: one local attempt
        first, as SymbolTrader's since the slot-local patch (same bounds), the activity
        only if it failed."""
        t0 = workflow.time()
        if local_first and (local := await local_slot_attempt(inp)) is not None:
            return ClientResult(grant=local, latency_s=workflow.time() - t0, local=True)
        grant = await workflow.execute_activity(
            c.ACQUIRE_SLOT,
            inp,
            result_type=c.SlotGrant,
            task_queue=task_queue,
            # Short: a killed worker's attempt is retried soon.
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=2)),
        )
        return ClientResult(grant=grant, latency_s=workflow.time() - t0)


PROBE_ORDER = "probe_order"


@workflow.defn(name="OrderProbe")
class OrderProbe:
    """An order's stand-in: one short activity on the main queue (bench/slots.py measures
    how long it waits for an activity slot during a burst of slot requests)."""

    @workflow.run
    async def run(self) -> float:
        t0 = workflow.time()
        await workflow.execute_activity(PROBE_ORDER, start_to_close_timeout=timedelta(seconds=300))
        return workflow.time() - t0


async def _serve(target: str, task_queue: str, *, die_on_grant: bool = False) -> None:
    from temporalio import activity
    from temporalio.client import Client
    from temporalio.worker import Worker

    from activities.portfolio import PortfolioActivities
    from trader.runtime.converter import DATA_CONVERTER
    from workflows.portfolio import Portfolio

    client = await Client.connect(target, data_converter=DATA_CONVERTER)
    acts = PortfolioActivities(client, task_queue=task_queue)

    @activity.defn(name=c.ACQUIRE_SLOT)
    async def acquire_then_die(inp: c.AcquireSlotInput) -> c.SlotGrant:
        grant = await acts.acquire_slot(inp)
        if grant.granted:
            print(f"granted {inp.request.decision_id}", flush=True)
            # Synchronous: no completion of this or any other attempt leaves the process.
            os.kill(os.getpid(), signal.SIGKILL)
        return grant

    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[Portfolio, SlotClient],
        activities=[acquire_then_die if die_on_grant else acts.acquire_slot],
    ):
        print("worker running", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], sys.argv[2], die_on_grant="--die-on-grant" in sys.argv[3:]))
