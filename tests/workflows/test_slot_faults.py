"""Late slot requests, on a real dev server: a request that reaches the Portfolio after
its decision was answered (another attempt of the same ``acquire_slot``, on another
worker) never takes a slot again, and a broker never waits for good on one Update."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.portfolio import (
    LOCAL_MAX_ASKING,
    SLOT_LOCAL_BUSY,
    SLOT_WAIT_EXPIRED,
    PortfolioActivities,
)
from activities.slot_broker import SlotBroker
from tests.hang_guard import bounded
from tests.workflows.slot_client import SlotClient
from tests.workflows.tcp_gate import tcp_gate
from trader import contracts as c
from trader.runtime.converter import DATA_CONVERTER
from workflows.portfolio import Portfolio


def _queue() -> tuple[str, str]:
    run = uuid.uuid4().hex[:8]
    return f"stale-{run}", f"portfolio:stale-{run}"


async def _until(check: object, what: str) -> None:
    for _ in range(3000):
        if callable(check) and check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {what}")


def _req(name: str) -> c.SlotRequest:
    return c.SlotRequest(decision_id=f"d-{name}", symbol=f"{name.upper()}/USDT")


@pytest.mark.parametrize("answer", ["released", "refused"])
async def test_a_late_request_never_takes_a_slot_for_an_answered_decision(
    dev_env: WorkflowEnvironment, answer: str
):
    """Worker A's attempt 1 for D stalls on its way; attempt 2, on worker B, is answered
    (granted then released: a buy that failed; or refused: all slots in use, after which
    the other trade ends). Then A's request arrives: D must not be granted, or nobody
    ever releases that slot (the trader moved on)."""
    client = dev_env.client
    tq, pid = _queue()
    target = client.service_client.config.target_host
    async with (
        tcp_gate(target) as gate,
        Worker(client, task_queue=tq, workflows=[Portfolio]),
    ):
        slow = await Client.connect(gate.target, data_converter=DATA_CONVERTER)
        a, b = SlotBroker(slow, task_queue=tq), SlotBroker(client, task_queue=tq)
        handle = client.get_workflow_handle(pid)
        assert (await bounded(a.acquire(pid, 1, _req("warm")), 60, "warm")).granted  # A's lane
        await handle.signal(Portfolio.release, "d-warm")
        if answer == "refused":
            assert (await bounded(b.acquire(pid, 1, _req("e")), 60, "e")).granted  # holds it
        gate.open.clear()
        late = asyncio.create_task(a.acquire(pid, 1, _req("d")))
        await _until(lambda: a.stats.updates == 2, "sent A's request")
        answered = await bounded(b.acquire(pid, 1, _req("d")), 60, "B's answer for d")
        await handle.signal(Portfolio.release, "d-d" if answer == "released" else "d-e")
        gate.open.set()
        regrant = await bounded(late, 60, "A's late request for d")
        slots = await handle.query(Portfolio.current_slots)
        await handle.terminate("test over")
    assert answered.granted is (answer == "released")
    assert not regrant.granted
    assert slots == {}  # no open trade, no slot


async def test_a_request_after_its_attempt_ended_is_answered_expired_never_granted(
    dev_env: WorkflowEnvironment,
):
    """The attempt is over (its activity stopped waiting): no grant, nothing remembered,
    and the next attempt of the same decision is granted."""
    client = dev_env.client
    tq, pid = _queue()
    async with Worker(client, task_queue=tq, workflows=[Portfolio]):
        handle = await client.start_workflow(
            Portfolio.run, c.PortfolioInput(max_trades=1), id=pid, task_queue=tq
        )
        past = _req("d").model_copy(update={"expires_at": 1.0})
        late = await bounded(
            handle.execute_update(Portfolio.acquire_many, c.SlotBatch(requests=[past])),
            60,
            "the late request's answer",
        )
        slots_after_late = await handle.query(Portfolio.current_slots)
        retry = await bounded(
            handle.execute_update(Portfolio.acquire_many, c.SlotBatch(requests=[_req("d")])),
            60,
            "the retry's answer",
        )
        await handle.terminate("test over")
    assert late.grants[0].expired and not late.grants[0].granted
    assert slots_after_late == {}
    assert retry.grants[0].granted


async def test_an_attempt_without_an_answer_gives_up_itself_and_withdraws_its_request(
    dev_env: WorkflowEnvironment,
):
    """Its broker's one sender is stuck on another request: the attempt fails itself before
    its deadline (retryable), its request leaves the queue unsent, the next attempt is
    granted once the Portfolio answers again."""
    client = dev_env.client
    tq, pid = _queue()
    target = client.service_client.config.target_host
    async with tcp_gate(target) as gate:
        slow = await Client.connect(gate.target, data_converter=DATA_CONVERTER)
        acts = PortfolioActivities(slow, task_queue=tq)
        assert acts.broker is not None
        acts.broker.max_in_flight = 1
        async with Worker(
            client,
            task_queue=tq,
            workflows=[Portfolio, SlotClient],
            activities=[acts.acquire_slot],
        ):
            assert (await bounded(acts.broker.acquire(pid, 2, _req("warm")), 60, "warm")).granted
            await client.get_workflow_handle(pid).signal(Portfolio.release, "d-warm")
            gate.open.clear()
            stuck = asyncio.create_task(acts.broker.acquire(pid, 2, _req("x")))
            await _until(lambda: acts.broker.stats.updates == 2, "sent x")
            d = await client.start_workflow(
                SlotClient.run,
                c.AcquireSlotInput(portfolio_id=pid, max_trades=2, request=_req("d")),
                id=f"{pid}:client:d",
                task_queue=tq,
            )
            await _until(lambda: acts.broker.stats.withdrawn >= 1, "withdrew d's request")
            gate.open.set()
            result = await bounded(d.result(), 120, "d's client workflow")
            assert (await bounded(stuck, 60, "the stuck request x")).granted
            history = await d.fetch_history()
    # A retried attempt's failure is not an event: the attempt that completed carries it.
    started = next(
        e.activity_task_started_event_attributes
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    )
    assert result.grant.granted
    assert started.attempt > 1
    # Failed by the activity itself, not timed out by the server.
    assert started.last_failure.application_failure_info.type == SLOT_WAIT_EXPIRED


async def test_an_unanswered_update_is_given_up_and_sent_again(dev_env: WorkflowEnvironment):
    """No worker runs the Portfolio yet: the Update hangs. The broker gives up on it and
    sends it again (without the requests given up meanwhile); once a worker runs the
    Portfolio, the request is granted."""
    client = dev_env.client
    tq, pid = _queue()
    await client.start_workflow(
        Portfolio.run, c.PortfolioInput(max_trades=1), id=pid, task_queue=tq
    )
    broker = SlotBroker(client, task_queue=tq, update_timeout_s=0.5)
    asking = asyncio.create_task(broker.acquire(pid, 1, _req("d")))
    await _until(lambda: broker.stats.failures >= 2, "gave up on the hanging Update")
    async with Worker(client, task_queue=tq, workflows=[Portfolio]):
        # Given up and sent again is shown; from here a 0.5 s answer could be missed for
        # good on a loaded machine (each Update sent again would run out the same way).
        broker.update_timeout_s = 30
        grant = await bounded(asking, 90, "the request sent again")
        slots = await client.get_workflow_handle(pid).query(Portfolio.current_slots)
        await client.get_workflow_handle(pid).terminate("test over")
    assert grant.granted and slots == {"d-d": "D/USDT"}


@contextlib.asynccontextmanager
async def _broker_for(client: Client, portfolio: type) -> AsyncIterator[tuple[SlotBroker, str]]:
    """A broker asking a Portfolio run by ``portfolio`` (a stand-in workflow class)."""
    tq, pid = _queue()
    async with Worker(client, task_queue=tq, workflows=[portfolio]):
        yield SlotBroker(client, task_queue=tq), pid
        await client.get_workflow_handle(pid).terminate("test over")


@workflow.defn(name="Portfolio")
class _ShortAnswers:
    """A Portfolio whose first answer is one grant short (a bug, a bad deploy)."""

    def __init__(self) -> None:
        self.answers = 0

    @workflow.run
    async def run(self, inp: c.PortfolioInput) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update
    def acquire_many(self, batch: c.SlotBatch) -> c.SlotBatchResult:
        self.answers += 1
        grant = c.SlotGrant(granted=True, in_use=len(batch.requests), max_trades=9)
        return c.SlotBatchResult(grants=[grant] * (len(batch.requests) - (self.answers == 1)))


async def test_a_malformed_answer_fails_the_batch_which_is_sent_again(
    dev_env: WorkflowEnvironment,
):
    async with _broker_for(dev_env.client, _ShortAnswers) as (broker, pid):
        # Bounded only so that a dead sender fails the test instead of hanging it.
        grant = await asyncio.wait_for(broker.acquire(pid, 9, _req("d")), 60)
    assert grant.granted and broker.stats.failures == 1


@workflow.defn(name="Portfolio")
class _PortfolioBeforeTheBroker:
    """The Portfolio of the release before ``acquire_many`` (git c4afbe6^1), as a worker
    not yet upgraded in a rolling deploy runs it."""

    @workflow.init
    def __init__(self, inp: c.PortfolioInput) -> None:
        self.max_trades = inp.max_trades
        self.slots: dict[str, str] = dict(inp.slots)

    @workflow.run
    async def run(self, inp: c.PortfolioInput) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update
    def acquire(self, req: c.SlotRequest) -> c.SlotGrant:
        granted = req.decision_id in self.slots or len(self.slots) < self.max_trades
        if granted:
            self.slots[req.decision_id] = req.symbol
        return c.SlotGrant(granted=granted, in_use=len(self.slots), max_trades=self.max_trades)

    @workflow.query
    def current_slots(self) -> dict[str, str]:
        return dict(self.slots)


async def test_a_portfolio_of_the_previous_release_is_asked_one_request_at_a_time(
    dev_env: WorkflowEnvironment,
):
    async with _broker_for(dev_env.client, _PortfolioBeforeTheBroker) as (broker, pid):
        grants = await asyncio.wait_for(
            asyncio.gather(*(broker.acquire(pid, 2, _req(n)) for n in "abc")), 60
        )
        slots = await dev_env.client.get_workflow_handle(pid).query(
            "current_slots", result_type=dict
        )
    assert [g.granted for g in grants] == [True, True, False]
    assert slots == {"d-a": "A/USDT", "d-b": "B/USDT"}
    assert broker.stats.one_by_one >= 1


def _local_env(attempt_s: float) -> ActivityEnvironment:
    """An activity environment whose attempt is a local activity's (the slot-local patch)."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, is_local=True, start_to_close_timeout=timedelta(seconds=attempt_s)
    )
    return env


async def test_a_local_attempt_asks_the_slot_queue_instead_while_its_broker_is_busy(
    dev_env: WorkflowEnvironment,
):
    """A burst on this worker: LOCAL_MAX_ASKING requests to the Portfolio still wait (no
    worker runs it yet), so a local attempt is refused at once (it would hold its workflow
    task, and the worker's slot for one, while the Portfolio needs those); once they are
    answered, a local attempt is granted, its request carrying the workflow's deadline."""
    client = dev_env.client
    tq, pid = _queue()
    acts = PortfolioActivities(client, task_queue=tq)
    assert acts.broker is not None
    waiting = [
        asyncio.create_task(acts.broker.acquire(pid, 20, _req(f"w{i}")))
        for i in range(LOCAL_MAX_ASKING)
    ]
    await _until(lambda: acts.broker.asking(pid) == LOCAL_MAX_ASKING, "a busy broker")
    seen: list[c.SlotRequest] = []
    local = c.AcquireSlotInput(
        portfolio_id=pid,
        max_trades=20,
        request=_req("local").model_copy(update={"expires_at": 9e9}),
    )
    with pytest.raises(ApplicationError) as refused:
        await _local_env(2).run(acts.acquire_slot, local)
    assert refused.value.type == SLOT_LOCAL_BUSY and refused.value.non_retryable
    assert acts.broker.stats.requests == LOCAL_MAX_ASKING  # nothing asked for it
    async with Worker(client, task_queue=tq, workflows=[Portfolio]):
        assert all(g.granted for g in await bounded(asyncio.gather(*waiting), 60, "the burst"))
        assert acts.broker.asking(pid) == 0
        real_acquire = acts.broker.acquire

        async def spy(portfolio_id: str, max_trades: int, req: c.SlotRequest, **kw: object):
            seen.append(req)
            return await real_acquire(portfolio_id, max_trades, req, **kw)  # type: ignore[arg-type]

        acts.broker.acquire = spy  # type: ignore[method-assign]
        grant = await _local_env(2).run(acts.acquire_slot, local)
    assert grant.granted
    assert [r.expires_at for r in seen] == [9e9]  # the workflow's deadline, not overridden
