"""A worker shutting down while the slot broker's Update waits: asyncio.run cancels every
task, and the SDK turns a cancelled Update RPC into WorkflowUpdateRPCTimeoutOrCancelledError.
Left as it is, the broker's inner task ended with that exception, unretrieved, and
asyncio.run logged it at ERROR with a traceback at every such shutdown (CI's real-data test
saw it in the starter's log). Real dev server; the Portfolio's queue has no worker, so the
Update waits."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.portfolio import SLOT_WAIT_EXPIRED, PortfolioActivities
from activities.slot_broker import SlotBroker
from tests.hang_guard import bounded
from trader import contracts as c


async def test_an_update_cancelled_by_shutdown_ends_its_task_cancelled_not_failed(
    dev_env: WorkflowEnvironment,
) -> None:
    broker = SlotBroker(dev_env.client, task_queue=f"unpolled-{uuid.uuid4().hex[:6]}")
    asking = asyncio.create_task(
        broker.acquire(
            f"portfolio-{uuid.uuid4().hex[:6]}", 2, c.SlotRequest(decision_id="d", symbol="A/B")
        )
    )

    async def _sent() -> None:
        while broker.stats.updates == 0:
            await asyncio.sleep(0.05)

    await bounded(_sent(), 30, "the Update sent")
    await asyncio.sleep(0.5)  # the RPC is in flight at the server
    inner = [
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "") == "SlotBroker._update"
    ]
    drains = list(broker._tasks)
    assert inner and drains
    for task in [asking, *drains, *inner]:  # what asyncio.run does at its end
        task.cancel()
    await bounded(
        asyncio.gather(asking, *drains, *inner, return_exceptions=True), 30, "the cancelled tasks"
    )
    assert [t.cancelled() for t in inner] == [True] * len(inner), [
        t.exception() for t in inner if not t.cancelled()
    ]


async def test_a_local_slot_attempt_with_no_answer_in_time_fails_as_benign(
    dev_env: WorkflowEnvironment,
) -> None:
    """The local attempt's "no answer in time" is the designed way to the slow path, not an
    error: BENIGN, which temporalio logs at DEBUG, where a plain failure is a WARNING with a
    traceback in the worker's log (CI's real-data test, which allows none, saw one)."""
    slots = PortfolioActivities(dev_env.client, task_queue=f"unpolled-{uuid.uuid4().hex[:6]}")
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, is_local=True, start_to_close_timeout=timedelta(seconds=1)
    )
    inp = c.AcquireSlotInput(
        portfolio_id=f"portfolio-{uuid.uuid4().hex[:6]}",
        max_trades=2,
        request=c.SlotRequest(decision_id="d", symbol="A/B"),
    )
    with pytest.raises(ApplicationError) as err:
        await bounded(env.run(slots.acquire_slot, inp), 30, "the local attempt")
    assert err.value.type == SLOT_WAIT_EXPIRED
    assert err.value.category is ApplicationErrorCategory.BENIGN
