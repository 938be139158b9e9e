"""Local activities in SymbolTrader, through the real workers on a test server: the slot
asked locally first (the slot-local patch), its fallback to the slot queue, and a local
activity that fails never failing the workflow.

A local activity's own failure reaches workflow code as the ApplicationError it raised, not
wrapped in an ActivityError as an activity's is (temporalio 1.35; a timeout does come as an
ActivityError): code that catches only ActivityError lets it fail the workflow, a symbol
and its position gone from the durable engine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from tests.workflows.harness import RealActivities, bench, path_of
from trader import contracts as c
from trader.core.phases import Phase
from workflows.base import SLOT_LOCAL_WAIT
from workflows.symbol_trader import SymbolTrader


def _acquire_events(history: WorkflowHistory) -> tuple[list[str], int]:
    """(the task queues of acquire_slot activities scheduled, local-activity markers)."""
    queues = [
        e.activity_task_scheduled_event_attributes.task_queue.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == c.ACQUIRE_SLOT
    ]
    markers = sum(
        1
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    )
    return queues, markers


async def test_the_slot_is_granted_by_a_local_attempt_with_no_activity_task(
    ts_env: WorkflowEnvironment, tmp_path: Path
):
    calls: list[bool] = []
    deadlines: list[float | None] = []

    def stand_in(real: RealActivities) -> list[Callable[..., Any]]:
        @activity.defn(name=c.ACQUIRE_SLOT)
        async def acquire_slot(inp: c.AcquireSlotInput) -> c.SlotGrant:
            calls.append(activity.info().is_local)
            deadlines.append(inp.request.expires_at)
            return cast(c.SlotGrant, await real[c.ACQUIRE_SLOT](inp))

        return [acquire_slot]

    async with bench(ts_env.client, tmp_path, stand_ins=stand_in) as b:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        s = await b.wait_phase(h, Phase.POSITION)
        history = await h.fetch_history()
    assert path_of(s)[:4] == ["warmup", "idle", "entry_eval", "place_buy"]
    assert calls == [True]  # one local attempt, granted
    # Its request expires on the workflow's clock (the Portfolio's), set in the deciding
    # task: the time ENTRY_EVAL was entered plus SLOT_LOCAL_WAIT.
    decided = next(r.ts for r in s.phase_history if r.dst is Phase.ENTRY_EVAL)
    assert deadlines == [pytest.approx(decided + SLOT_LOCAL_WAIT.total_seconds(), abs=0.01)]
    queues, markers = _acquire_events(history)
    assert queues == [] and markers == 1


async def test_a_failed_local_slot_attempt_falls_back_to_the_slot_queue(
    ts_env: WorkflowEnvironment, tmp_path: Path
):
    calls: list[tuple[bool, str]] = []

    def stand_in(real: RealActivities) -> list[Callable[..., Any]]:
        @activity.defn(name=c.ACQUIRE_SLOT)
        async def acquire_slot(inp: c.AcquireSlotInput) -> c.SlotGrant:
            info = activity.info()
            calls.append((info.is_local, info.task_queue))
            if info.is_local:
                raise RuntimeError("the Portfolio's Update was refused")
            return cast(c.SlotGrant, await real[c.ACQUIRE_SLOT](inp))

        return [acquire_slot]

    async with bench(ts_env.client, tmp_path, stand_ins=stand_in) as b:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        s = await b.wait_phase(h, Phase.POSITION)
        history = await h.fetch_history()
        slot_queue = c.slot_task_queue(b.watch_queue)
    assert "error" not in path_of(s) and s.phase is Phase.POSITION
    assert calls == [(True, b.task_queue), (False, slot_queue)]
    queues, markers = _acquire_events(history)
    assert queues == [slot_queue] and markers == 1


async def test_a_failing_last_watch_beat_never_fails_the_workflow(
    ts_env: WorkflowEnvironment, tmp_path: Path
):
    """A pause cancels the entry watch and reads its last heartbeat first (a local
    activity describing the workflow): every attempt failing keeps the checkpoint's state,
    the symbol paused and alive."""
    calls: list[int] = []

    def stand_in(real: RealActivities) -> list[Callable[..., Any]]:
        @activity.defn(name=c.LAST_WATCH_BEAT)
        async def last_watch_beat(inp: c.LastBeatInput) -> c.LastBeatResult:
            calls.append(activity.info().attempt)
            raise RuntimeError("describe refused: RESOURCE_EXHAUSTED")

        return [last_watch_beat]

    async with bench(ts_env.client, tmp_path, stand_ins=stand_in) as b:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        await h.signal(SymbolTrader.pause_entries)
        paused = await b.wait_for(
            h, lambda s: s.controls.entries_paused and len(calls) >= 3, what="paused"
        )
        at_pause = list(calls)  # (the bench's stop at the end cancels a watch again)
        await h.signal(SymbolTrader.resume_entries)
        b.set_price("BTC/USDT", "97.90")
        held = await b.wait_phase(h, Phase.POSITION)
        status = (await h.describe()).status
    assert paused.phase is Phase.IDLE and at_pause == [1, 2, 3]
    assert held.phase is Phase.POSITION and status is WorkflowExecutionStatus.RUNNING


async def test_a_pause_sent_during_a_granted_local_attempt_is_seen_after_the_buy(
    ts_env: WorkflowEnvironment, tmp_path: Path
):
    """The documented edge (docs/architecture.md): a signal sent while the local attempt
    runs reaches the workflow in its next task, after the deciding task scheduled
    place_order with the grant. The buy is placed once, its position held, the pause kept:
    not lost, and no second entry."""
    client = ts_env.client
    calls: list[bool] = []

    def stand_in(real: RealActivities) -> list[Callable[..., Any]]:
        @activity.defn(name=c.ACQUIRE_SLOT)
        async def acquire_slot(inp: c.AcquireSlotInput) -> c.SlotGrant:
            info = activity.info()
            calls.append(info.is_local)
            assert info.workflow_id is not None
            handle = client.get_workflow_handle(info.workflow_id)
            await handle.signal(SymbolTrader.pause_entries)  # on the server before the grant
            return cast(c.SlotGrant, await real[c.ACQUIRE_SLOT](inp))

        return [acquire_slot]

    async with bench(client, tmp_path, stand_ins=stand_in) as b:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        s = await b.wait_for(
            h, lambda s: s.phase is Phase.POSITION and s.controls.entries_paused, what="held"
        )
        history = await h.fetch_history()
    assert calls == [True] and path_of(s)[:4] == ["warmup", "idle", "entry_eval", "place_buy"]
    kinds = [
        "place_order"
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == c.PLACE_ORDER
        else "signal"
        if e.HasField("workflow_execution_signaled_event_attributes")
        and e.workflow_execution_signaled_event_attributes.signal_name == "pause_entries"
        else None
        for e in history.events
    ]
    assert [k for k in kinds if k] == ["place_order", "signal"]
