"""The load bench's history analysis on a hand-built history: what each figure counts."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import ActivityType, Payload, Payloads
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import (
    ActivityTaskCompletedEventAttributes,
    ActivityTaskScheduledEventAttributes,
    ActivityTaskStartedEventAttributes,
    HistoryEvent,
    MarkerRecordedEventAttributes,
    WorkflowTaskTimedOutEventAttributes,
)

from bench.load_stats import LoadStats, percentiles

T0 = 1_800_000_000.0


class _History:
    def __init__(self) -> None:
        self.events: list[HistoryEvent] = []

    def _add(self, t: float, kind: EventType.ValueType, **attrs: Any) -> int:
        when = Timestamp()
        when.FromMilliseconds(int((T0 + t) * 1000))
        ev = HistoryEvent(event_id=len(self.events) + 1, event_time=when, event_type=kind, **attrs)
        self.events.append(ev)
        return ev.event_id

    def other(self, t: float) -> None:
        self._add(t, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)

    def activity(
        self,
        name: str,
        start: float,
        end: float,
        result: dict[str, Any],
        *,
        started: float | None = None,
    ) -> None:
        sid = self._add(
            start,
            EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
            activity_task_scheduled_event_attributes=ActivityTaskScheduledEventAttributes(
                activity_type=ActivityType(name=name)
            ),
        )
        if started is not None:
            self._add(
                started,
                EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
                activity_task_started_event_attributes=ActivityTaskStartedEventAttributes(
                    scheduled_event_id=sid
                ),
            )
        payload = Payload(data=json.dumps(result).encode())
        self._add(
            end,
            EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
            activity_task_completed_event_attributes=ActivityTaskCompletedEventAttributes(
                scheduled_event_id=sid, result=Payloads(payloads=[payload])
            ),
        )

    def task_started(self, t: float) -> None:
        self._add(t, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)

    def local_activity(self, name: str, t: float, *, failed: bool = False) -> None:
        """A local activity's marker, as core writes it (at its workflow task's end)."""
        data = {"activity_type": name, "attempt": 1}
        payload = Payload(data=json.dumps(data).encode())
        self._add(
            t,
            EventType.EVENT_TYPE_MARKER_RECORDED,
            marker_recorded_event_attributes=MarkerRecordedEventAttributes(
                marker_name="core_local_activity",
                details={"data": Payloads(payloads=[payload])},
                failure=Failure(message="Activity timed out") if failed else None,
            ),
        )


def _fired(fired: bool, ts: float) -> dict[str, Any]:
    return {"fired": fired, "ticker": {"ts_ms": int((T0 + ts) * 1000)}}


def test_one_trade_round() -> None:
    h = _History()
    h.other(0)  # start-up: before the first watch
    h.activity("watch_entry", 10, 40.5, _fired(False, 40))  # a checkpoint of 30.5 s
    h.activity("watch_entry", 41, 50, _fired(True, 49.5))
    h.activity("acquire_slot", 51, 51.25, {"granted": True})
    h.activity("place_order", 52, 52.5, {"side": "buy", "ts_ms": int((T0 + 52.25) * 1000)})
    h.activity("watch_exit", 60, 65, _fired(False, 64.5))  # held from 60 to the sell at 71
    h.activity("notify", 65.5, 66, {})  # another activity: still held
    h.activity("watch_exit", 66, 70, _fired(True, 69))
    h.activity("place_order", 71, 71.5, {"side": "sell", "ts_ms": int((T0 + 70) * 1000)})
    h.activity("watch_entry", 80, 110, _fired(False, 109))  # idle again from 80
    h.activity("watch_entry", 200, 230, _fired(False, 229))  # after the end: not counted
    stats = LoadStats()
    assert stats.add(h.events, end=T0 + 120)
    s = stats.summary(checkpoint_s=30)
    assert s["checkpoint_actual_s"] == {"n": 3, "p50": 30.0, "p99": 30.5, "max": 30.5}
    assert s["slot_grant_s"]["n"] == 1 and s["slot_grant_s"]["p50"] == 0.25
    assert s["entry_trigger_to_order_s"]["max"] == 2.75  # 49.5 -> 52.25
    assert s["exit_trigger_to_order_s"]["max"] == 1.0  # 69 -> 70
    assert (s["events_startup"], s["events_idle"], s["events_held"]) == (1, 12, 6)
    assert stats.held_s == 11  # 60 .. 71
    assert stats.idle_s == 110 - 11  # 10 .. 120 less the held time
    assert s["failures"] == {}


def test_a_slot_granted_by_a_local_attempt_is_a_slot_grant() -> None:
    """The slot-local patch: the grant is a local activity's marker, not an activity,
    timed by its workflow task; a failed local attempt is no grant but a fallback (the
    slot queue's activity that follows is the grant)."""
    h = _History()
    h.other(0)
    h.activity("watch_entry", 10, 50, _fired(True, 49.5))
    h.task_started(50.1)
    h.local_activity("acquire_slot", 50.125)
    h.local_activity("last_watch_beat", 50.125)  # another local activity: not a grant
    h.activity("place_order", 50.2, 50.5, {"side": "buy", "ts_ms": int((T0 + 50.4) * 1000)})
    h.activity("watch_entry", 60, 70, _fired(True, 69.5))
    h.task_started(70.1)
    h.local_activity("acquire_slot", 73, failed=True)
    h.activity("acquire_slot", 73, 73.5, {"granted": True})
    stats = LoadStats()
    assert stats.add(h.events, end=T0 + 100)
    assert sorted(round(g, 3) for g in stats.slot_grants_s) == [0.025, 0.5]
    assert stats.slot_local_fallbacks == 1
    assert stats.summary(checkpoint_s=30)["slot_local_fallbacks"] == 1


def test_a_run_without_a_watch_counts_only_start_up() -> None:
    h = _History()
    h.other(0)
    h.other(5)
    stats = LoadStats()
    assert not stats.add(h.events, end=T0 + 60)
    assert (stats.startup_events, stats.idle_s, stats.held_s) == (2, 0, 0)


def test_percentiles_nearest_rank() -> None:
    assert percentiles([]) == {"n": 0, "p50": None, "p99": None, "max": None}
    p = percentiles([float(x) for x in range(1, 101)])
    assert (p["n"], p["p50"], p["p99"], p["max"]) == (100, 51.0, 100.0, 100.0)


def _warmed(start: float, scheduled: float, started: float, done: float) -> list[HistoryEvent]:
    h = _History()
    h._add(start, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED)
    h._add(start + 1, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)
    h.activity("warmup", scheduled, done, {}, started=started)
    h._add(done + 0.5, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED)
    h._add(done + 3, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)  # not the first task
    h.activity("watch_entry", done + 4, done + 64, _fired(False, done + 63), started=done + 5)
    return h.events


def test_warm_up_figures() -> None:
    stats = LoadStats()
    stats.add(_warmed(0, 2, 4, 4.5), end=T0 + 100)
    stats.add(_warmed(1, 3, 8, 9), end=T0 + 100)
    stats.add(_warmed(2, 90, 95, 101), end=T0 + 100)  # done after the end: not counted
    s = stats.summary(checkpoint_s=60)
    assert s["first_workflow_task_queued_s"] == {"n": 3, "p50": 1.0, "p99": 1.0, "max": 1.0}
    assert s["warmup_queued_s"] == {"n": 2, "p50": 5.0, "p99": 5.0, "max": 5.0}  # 2, 5
    assert s["warmup_run_s"]["p50"] == 1.0 and s["warmup_run_s"]["max"] == 1.0  # .5, 1
    # Past WARMUP at the first watch (8.5, 13), timed from the launch at T0 - 2: 10.5 and
    # 15 s; CPU 3 s over both.
    w = stats.warmup_summary(symbols=3, since=T0 - 2, cpu_s=3.0)
    assert w == {
        "done": 2,
        "all_s": None,  # one of the three is not warm
        "half_s": 15.0,
        "per_s": 0.13,
        "worker_cpu_s_per_warmup": 1.5,
    }
    assert stats.warmup_summary(symbols=2, since=T0 - 2, cpu_s=3.0)["all_s"] == 15.0
    # A continued-as-new run has no warm-up: its first watch is not a warm-up's end.
    h = _History()
    h.activity("watch_entry", 5, 65, _fired(False, 64), started=6)
    stats.add(h.events, end=T0 + 100)
    assert len(stats.warmed_at) == 2


def test_a_timed_out_workflow_task_names_its_timeout() -> None:
    h = _History()
    for timeout in (TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START,) * 2 + (
        TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE,
    ):
        h._add(
            1,
            EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
            workflow_task_timed_out_event_attributes=WorkflowTaskTimedOutEventAttributes(
                timeout_type=timeout
            ),
        )
    stats = LoadStats()
    stats.add(h.events, end=T0 + 10)
    assert stats.summary(checkpoint_s=60)["failure_messages"] == {
        "workflow task: timed out (TIMEOUT_TYPE_SCHEDULE_TO_START)": 2,
        "workflow task: timed out (TIMEOUT_TYPE_START_TO_CLOSE)": 1,
    }
