"""The per-hop breakdown of one trigger -> buy, from timestamps nothing had to add a
command for: the SymbolTrader's and the Portfolio's history event times, the local Binance
server's request and frame logs, and the hub's publish hook. All on this machine's wall
clock, in microseconds (the Temporal dev server, the sim and the hub run on one host).

A hop is the time from the mark before it that the trigger has (each hop says over how
many triggers it was measured). The total (set -> create) is measured for every trigger.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from decimal import Decimal

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from bench.load_stats import local_slot_answer
from trader import contracts as c

MARKS = (
    ("set", "price set at the server"),
    ("frame", "stream frame written (REST: the poll request arrives)"),
    ("publish", "hub publishes the price"),
    ("watch_done", "watch_entry completed (history)"),
    ("decide_start", "workflow task started (guards)"),
    ("decide_done", "workflow task completed (acquire_slot scheduled)"),
    ("slot_start", "acquire_slot started"),
    ("grant", "Portfolio update completed (history)"),
    ("slot_done", "acquire_slot completed"),
    ("place_wft_start", "workflow task started (place_buy)"),
    ("place_wft_done", "workflow task completed (place_order scheduled)"),
    ("place_start", "place_order started"),
    ("lookup", "lookup-before-create arrives at the server"),
    ("create", "create arrives at the server"),
)
"""The marks of one trigger, in path order: (key, what)."""

_E = EventType
Event = tuple[HistoryEvent, str]
"""A history event and the name of the activity it concerns ("" if none)."""


@dataclass
class Logs:
    """What one run left behind, gathered before its bench closes."""

    trader: list[Event]
    portfolio: list[Event]
    requests: list[tuple[int, str, str]]
    frames: list[tuple[int, str]]
    publishes: list[tuple[int, str, Decimal]]


def _us(e: HistoryEvent) -> int:
    return e.event_time.ToMicroseconds()


def _activity(e: HistoryEvent) -> int:
    if e.event_type == _E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
        return e.activity_task_started_event_attributes.scheduled_event_id
    if e.event_type == _E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        return e.activity_task_completed_event_attributes.scheduled_event_id
    return 0


def marks(
    logs: Logs, *, symbol: str, set_us: int, price: Decimal, create_us: int
) -> dict[str, int]:
    """The marks of the trigger whose price was set at ``set_us`` and whose create arrived
    at ``create_us``; each one the first of its kind after the mark before it."""
    m: dict[str, int] = {"set": set_us, "create": create_us}
    frame = next((t for t, s in logs.frames if s == symbol and t >= set_us), None)
    if frame is None:  # REST: the poll that brings the price
        frame = next((t for t, ep, _ in logs.requests if "ticker" in ep and t >= set_us), None)
    if frame is not None and frame <= create_us:
        m["frame"] = frame
    near = price / 100  # the trigger is a 3 % move: within 1 % is the new price
    pub = next(
        (t for t, s, p in logs.publishes if s == symbol and t >= set_us and abs(p - price) < near),
        None,
    )
    if pub is not None and pub <= create_us:
        m["publish"] = pub
    # In history order (an activity's started event is written with its completion, but
    # carries the time it started).
    window = [(e, a) for e, a in logs.trader if set_us <= _us(e) <= create_us + 1_000_000]
    events = [e for e, _ in window]

    def first(i: int, pred: object) -> int:
        assert callable(pred)
        return next((j for j in range(i, len(events)) if pred(events[j])), -1)

    def named(e: HistoryEvent, kind: int, name: str) -> bool:
        return e.event_type == kind and activity_of[id(e)] == name

    activity_of = {id(e): a for e, a in window}

    i = first(0, lambda e: named(e, _E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, c.WATCH_ENTRY))
    if i < 0:
        return m
    m["watch_done"] = _us(events[i])

    def workflow_task(i: int, started: str, done: str) -> int:
        # The next workflow task's start and completion; -1 if either is missing.
        for key, kind in (
            (started, _E.EVENT_TYPE_WORKFLOW_TASK_STARTED),
            (done, _E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
        ):
            i = first(i, lambda e, k=kind: e.event_type == k)
            if i < 0:
                return -1
            m[key] = _us(events[i])
        return i

    def grant() -> None:
        t = next(
            (
                _us(e)
                for e, _ in logs.portfolio
                if e.event_type == _E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED
                and _us(e) >= m["slot_start"]
            ),
            None,
        )
        if t is not None:
            m["grant"] = t

    if (i := workflow_task(i, "decide_start", "decide_done")) < 0:
        return m
    local = _local_slot(events[i + 1 : i + 40])
    if local:
        # The slot-local patch: the slot asked by a local attempt inside the deciding
        # workflow task, which then schedules place_order itself. (The marker's own
        # times are not used: its complete_time can read before its schedule time.)
        m["slot_start"] = m["decide_start"]
        grant()
        del m["slot_start"]
        m["place_wft_done"] = m.pop("decide_done")
    else:
        i = first(i, lambda e: named(e, _E.EVENT_TYPE_ACTIVITY_TASK_STARTED, c.ACQUIRE_SLOT))
    if not local and i >= 0:
        m["slot_start"] = _us(events[i])
        grant()
        i = first(i, lambda e: named(e, _E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, c.ACQUIRE_SLOT))
        if i < 0:
            return m
        m["slot_done"] = _us(events[i])
        if (i := workflow_task(i, "place_wft_start", "place_wft_done")) < 0:
            return m
    i = first(i, lambda e: named(e, _E.EVENT_TYPE_ACTIVITY_TASK_STARTED, c.PLACE_ORDER))
    if i < 0:
        return m
    m["place_start"] = _us(events[i])
    lookup = next(
        (
            t
            for t, ep, _ in logs.requests
            if ep == "GET /api/v3/order" and m["place_start"] <= t <= create_us
        ),
        None,
    )
    if lookup is not None:
        m["lookup"] = lookup
    return m


def _local_slot(events: list[HistoryEvent]) -> bool:
    """Whether a workflow task's commands hold a granted acquire_slot local attempt (its
    marker before any activity is scheduled)."""
    for e in events:
        if e.event_type == _E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            return False  # an activity scheduled first: not the local path
        if (answered := local_slot_answer(e)) is not None:
            return answered  # (unanswered locally: the slot queue's activity follows)
    return False


def hops(samples: list[dict[str, int]]) -> list[dict[str, object]]:
    """p50 / p99 (the max below 100 samples) of each hop in ms, over the triggers that
    have its mark (``n``); hop ``-> b`` is keyed by ``b`` and measured from the mark before
    it in path order that the trigger has (the slot-local path has no workflow task
    between the grant and place_order's scheduling, for example)."""
    out: list[dict[str, object]] = []
    keys = [k for k, _ in MARKS]
    what = dict(MARKS)
    spans: dict[str, list[float]] = {}
    for m in samples:
        present = [k for k in keys if k in m]
        for before, key in zip(present, present[1:], strict=False):
            spans.setdefault(key, []).append((m[key] - m[before]) / 1000)
    for key in keys:
        if key in spans:
            out.append({"hop": key, "to": what[key], "n": len(spans[key])} | _pcts(spans[key]))
    return out


def _pcts(spans: list[float]) -> dict[str, float]:
    ordered = sorted(spans)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50_ms": round(statistics.median(ordered), 1), "p99_ms": round(p99, 1)}


async def run_chain(client: Client, workflow_id: str) -> list[Event]:
    """Every event of the workflow's runs, oldest run first (continue-as-new walked back
    from the latest run), each with the activity it concerns ("" if none), resolved
    within its own run (event ids start at 1 in every run)."""
    runs: list[list[Event]] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        names = {
            e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
            for e in history.events
            if e.event_type == _E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        }
        runs.append([(e, names.get(_activity(e), "")) for e in history.events])
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id or None
        if run_id is None:
            return [e for run in reversed(runs) for e in run]


def table(rows: list[dict[str, object]]) -> str:
    """The breakdown as a Markdown table."""
    lines = ["| hop (to) | n | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['to']} | {r['n']} | {r['p50_ms']} | {r['p99_ms']} |")
    return "\n".join(lines)
