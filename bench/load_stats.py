"""What the load bench reads from the workflow histories: watch checkpoints, slot grants,
trigger -> order latency, history events per idle and held symbol-hour, and failures.

One analysis for both designs: a watch (``watch_entry`` / ``watch_exit``) or a naive tick
(``naive_entry_tick`` / ``naive_exit_tick``) result has ``fired`` and ``ticker.ts_ms``; an
order result (``place_order`` / ``naive_place``) is an ``Order`` with its exchange
``ts_ms``. A symbol is *held* from its first exit watch (or exit tick) scheduled until its
sell order (or its next entry watch) is scheduled, *idle* otherwise; what comes before its
first watch is start-up.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.api.history.v1 import HistoryEvent

ENTRY_WATCHES = {"watch_entry", "naive_entry_tick"}
EXIT_WATCHES = {"watch_exit", "naive_exit_tick"}
NAIVE_TICKS = {"naive_entry_tick", "naive_exit_tick"}
ORDERS = {"place_order", "naive_place"}
SLOT = "acquire_slot"
WARMUP = "warmup"
_FAILED = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED: "workflow_task_failed",
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT: "workflow_task_timed_out",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_failed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_timed_out",
}
_CLOSED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
}


def _payload(ev_attrs: Any) -> Any:
    payloads = ev_attrs.result.payloads
    return json.loads(payloads[0].data) if payloads else None


def local_slot_answer(ev: HistoryEvent) -> bool | None:
    """An acquire_slot local attempt's marker (the slot-local patch): True if it was
    answered, False if it failed (the slot queue's activity follows); None for any other
    event. bench/hops.py reads the path with it too."""
    if ev.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
        return None
    attrs = ev.marker_recorded_event_attributes
    if attrs.marker_name != "core_local_activity" or "data" not in attrs.details:
        return None
    data = json.loads(attrs.details["data"].payloads[0].data)
    if data.get("activity_type") != SLOT:
        return None
    return not attrs.HasField("failure")


def _ts(ev: HistoryEvent) -> float:
    return ev.event_time.ToDatetime().timestamp()


@dataclass
class _Warmup:
    """One history's start-up, while it is read."""

    first_task: float | None = None
    first_started: bool = False
    scheduled: dict[int, float] = field(default_factory=dict)
    started: dict[int, float] = field(default_factory=dict)
    done: bool = False


@dataclass
class LoadStats:
    """Accumulated over every history of one run."""

    checkpoints_s: list[float] = field(default_factory=list)
    """A watch that returned without firing: scheduled -> completed. For the naive design
    the interval between one tick's schedule and the next."""
    slot_grants_s: list[float] = field(default_factory=list)
    slot_local_fallbacks: int = 0
    """Local slot attempts that failed (the slot-local patch's slow path taken)."""
    entry_to_order_s: list[float] = field(default_factory=list)
    exit_to_order_s: list[float] = field(default_factory=list)
    orders_s: list[float] = field(default_factory=list)
    startup_events: int = 0
    """Before a symbol's first watch (start, warm-up): counted apart, not per hour."""
    idle_events: int = 0
    held_events: int = 0
    idle_event_types: Counter[str] = field(default_factory=Counter)
    """What the idle events are (``ACTIVITY_TASK_COMPLETED``: n, ...)."""
    idle_s: float = 0.0
    held_s: float = 0.0
    failures: Counter[str] = field(default_factory=Counter)
    failed_activities: Counter[str] = field(default_factory=Counter)
    failure_messages: Counter[str] = field(default_factory=Counter)
    """``<activity or workflow task>: <failure message>`` and how often."""
    warmed_at: list[float] = field(default_factory=list)
    """Epoch seconds at which each warmed-up run scheduled its first watch: past WARMUP
    (the workflow task after the ``warmup`` activity made the transition)."""
    warmup_queued_s: list[float] = field(default_factory=list)
    """``warmup`` scheduled -> started: the wait for an activity slot and a poll."""
    warmup_run_s: list[float] = field(default_factory=list)
    """``warmup`` started -> completed: the activity itself."""
    first_task_queued_s: list[float] = field(default_factory=list)
    """A run's first workflow task, scheduled -> started (the normal, non-sticky queue)."""

    def add(self, events: list[HistoryEvent], *, end: float) -> bool:
        """One run's history, counted up to ``end`` (epoch seconds: when the bench
        stopped the workers); whether a watch (or tick) of it completed."""
        scheduled: dict[int, tuple[str, float]] = {}
        held, started = False, False  # events before the first watch are start-up
        since = _ts(events[0]) if events else end
        trigger_ms: int | None = None
        watched = False
        last_tick: float | None = None
        warm = _Warmup()
        task_started = since
        for ev in events:
            t = _ts(ev)
            if t > end:
                break
            self._startup(ev, t, warm)
            if ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                name = ev.activity_task_scheduled_event_attributes.activity_type.name
                scheduled[ev.event_id] = (name, t)
                if name in NAIVE_TICKS:
                    if last_tick is not None:
                        self.checkpoints_s.append(t - last_tick)
                    last_tick = t
                watch = name in ENTRY_WATCHES or name in EXIT_WATCHES
                if watch and not started:
                    started, since = True, t
                    if warm.done:
                        self.warmed_at.append(t)
                # Held: an exit watch runs; idle again at the sell order or an entry watch.
                if (name in EXIT_WATCHES and not held) or (
                    held and (watch or name in ORDERS) and name not in EXIT_WATCHES
                ):
                    self._span(held, t - since)
                    held, since = not held, t
            if not started:
                self.startup_events += 1
            elif held:
                self.held_events += 1
            else:
                self.idle_events += 1
                self.idle_event_types[EventType.Name(ev.event_type)[len("EVENT_TYPE_") :]] += 1
            if ev.event_type in _FAILED:
                self._failed(ev, scheduled)
            if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                task_started = t
            elif (local := local_slot_answer(ev)) is not None:
                # Granted locally: the deciding workflow task's start -> its completion
                # (the marker's time), an upper bound (guards and the order's scheduling
                # are in it; the marker's own times are not reliable). A failed attempt
                # is no grant: the slot queue's activity that follows is.
                if local:
                    self.slot_grants_s.append(t - task_started)
                else:
                    self.slot_local_fallbacks += 1
            if ev.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                continue
            done = ev.activity_task_completed_event_attributes
            name, t0 = scheduled[done.scheduled_event_id]
            if name in ENTRY_WATCHES or name in EXIT_WATCHES:
                result, watched = _payload(done), True
                if result["fired"]:
                    trigger_ms = int(result["ticker"]["ts_ms"])
                elif name not in NAIVE_TICKS:
                    self.checkpoints_s.append(t - t0)
            elif name == SLOT:
                self.slot_grants_s.append(t - t0)
            elif name in ORDERS:
                self.orders_s.append(t - t0)
                order = _payload(done)
                if trigger_ms is not None and order and order.get("ts_ms"):
                    lag = (int(order["ts_ms"]) - trigger_ms) / 1000
                    (
                        self.entry_to_order_s if order["side"] == "buy" else self.exit_to_order_s
                    ).append(lag)
                trigger_ms = None
        if not started:
            return watched
        if events and events[-1].event_type in _CLOSED:  # e.g. continued as new
            end = min(end, _ts(events[-1]))
        self._span(held, max(end - since, 0.0) if events else 0.0)
        return watched

    def _startup(self, ev: HistoryEvent, t: float, warm: _Warmup) -> None:
        # A run's first workflow task, and its warm-up activity: queued (scheduled ->
        # started) and run (started -> completed).
        kind = ev.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED and warm.first_task is None:
            warm.first_task = t
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and not warm.first_started:
            warm.first_started = True
            if warm.first_task is not None:
                self.first_task_queued_s.append(t - warm.first_task)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if ev.activity_task_scheduled_event_attributes.activity_type.name == WARMUP:
                warm.scheduled[ev.event_id] = t
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            sid = ev.activity_task_started_event_attributes.scheduled_event_id
            if sid in warm.scheduled:
                warm.started[sid] = t
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            sid = ev.activity_task_completed_event_attributes.scheduled_event_id
            if sid in warm.started:
                self.warmup_queued_s.append(warm.started[sid] - warm.scheduled[sid])
                self.warmup_run_s.append(t - warm.started[sid])
                warm.done = True

    def _failed(self, ev: HistoryEvent, scheduled: dict[int, tuple[str, float]]) -> None:
        kind = _FAILED[ev.event_type]
        self.failures[kind] += 1
        if kind == "workflow_task_failed":
            failure = ev.workflow_task_failed_event_attributes.failure
            name = "workflow task"
        elif kind == "workflow_task_timed_out":
            # SCHEDULE_TO_START: a sticky task no poller took in time (then replayed
            # from the whole history elsewhere); START_TO_CLOSE: a task that ran too long.
            timeout = ev.workflow_task_timed_out_event_attributes.timeout_type
            self.failure_messages[f"workflow task: timed out ({TimeoutType.Name(timeout)})"] += 1
            return
        else:
            attrs: Any = (
                ev.activity_task_failed_event_attributes
                if kind == "activity_failed"
                else ev.activity_task_timed_out_event_attributes
            )
            failure, name = attrs.failure, scheduled[attrs.scheduled_event_id][0]
            self.failed_activities[name] += 1
        self.failure_messages[f"{name}: {failure.message[:160]}"] += 1

    @property
    def events(self) -> int:
        return self.startup_events + self.idle_events + self.held_events

    def _span(self, held: bool, seconds: float) -> None:
        if held:
            self.held_s += seconds
        else:
            self.idle_s += seconds

    def summary(self, *, checkpoint_s: float) -> dict[str, Any]:
        return {
            "checkpoint_planned_s": checkpoint_s,
            "checkpoint_actual_s": percentiles(self.checkpoints_s),
            "slot_grant_s": percentiles(self.slot_grants_s),
            "slot_local_fallbacks": self.slot_local_fallbacks,
            "entry_trigger_to_order_s": percentiles(self.entry_to_order_s),
            "exit_trigger_to_order_s": percentiles(self.exit_to_order_s),
            "place_order_s": percentiles(self.orders_s),
            "idle_symbol_hours": round(self.idle_s / 3600, 3),
            "held_symbol_hours": round(self.held_s / 3600, 3),
            "events_total": self.events,
            "events_startup": self.startup_events,
            "events_idle": self.idle_events,
            "events_held": self.held_events,
            "events_per_idle_symbol_hour": _rate(self.idle_events, self.idle_s),
            "events_per_held_symbol_hour": _rate(self.held_events, self.held_s),
            "idle_event_types": dict(self.idle_event_types.most_common()),
            "failures": dict(self.failures),
            "failed_activities": dict(self.failed_activities),
            "failure_messages": dict(self.failure_messages.most_common(8)),
            "first_workflow_task_queued_s": percentiles(self.first_task_queued_s),
            "warmup_queued_s": percentiles(self.warmup_queued_s),
            "warmup_run_s": percentiles(self.warmup_run_s),
        }

    def warmup_summary(self, *, symbols: int, since: float, cpu_s: float) -> dict[str, Any]:
        """Warm-ups done from ``since`` (epoch s, the launch's start): how many, when the
        last finished (``all_s`` only when all ``symbols`` did), the rate, and ``cpu_s``
        (the workers' CPU seconds over the same span) per warm-up."""
        done = sorted(t - since for t in self.warmed_at)
        last = done[-1] if done else None
        return {
            "done": len(done),
            "all_s": round(last, 1) if last is not None and len(done) >= symbols else None,
            "half_s": round(done[(symbols - 1) // 2], 1) if len(done) * 2 >= symbols else None,
            "per_s": round(len(done) / last, 2) if last else None,
            "worker_cpu_s_per_warmup": round(cpu_s / len(done), 4) if done else None,
        }


def _rate(events: int, seconds: float) -> float | None:
    return round(events / (seconds / 3600), 1) if seconds > 0 else None


def percentiles(samples: list[float]) -> dict[str, float | int | None]:
    """n, p50, p99 (nearest rank) and max, in seconds; None without samples."""
    if not samples:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    s = sorted(samples)

    def rank(q: float) -> float:
        return round(s[min(len(s) - 1, int(q * len(s)))], 3)

    return {"n": len(s), "p50": rank(0.5), "p99": rank(0.99), "max": round(s[-1], 3)}


def as_epoch(when: datetime | None, default: float) -> float:
    return when.timestamp() if when is not None else default
