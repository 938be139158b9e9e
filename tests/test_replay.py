"""Committed histories of real lifecycles replay cleanly against today's workflow code,
and a change that alters the workflow's commands is caught (unless behind a patch)."""

from __future__ import annotations

import base64
import contextlib
import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from trader import contracts as c
from trader.runtime.converter import DATA_CONVERTER
from trader.runtime.runner import workflow_runner
from workflows.base import (
    BOUNDED_DRAIN_PATCH,
    ERROR_WINDOW_PATCH,
    EXCHANGE_REALITY_PATCH,
    SLOT_LOCAL_PATCH,
    SLOT_RETRY_PATCH,
    SLOT_WAIT_PATCH,
    STATUS_MEMO_PATCH,
    WATCH_HANDBACK_PATCH,
    TraderBase,
)
from workflows.entry_phases import EntryPhases
from workflows.exit_phases import ExitPhases
from workflows.hybrid_validator import OWN_QUEUE_PATCH, HybridValidator
from workflows.portfolio import Portfolio
from workflows.recovery import RecoveryPhases
from workflows.symbol_trader import SymbolTrader

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def _replayer(*, sandboxed: bool = True) -> Replayer:
    return Replayer(
        workflows=[SymbolTrader, Portfolio, HybridValidator],
        data_converter=DATA_CONVERTER,
        workflow_runner=workflow_runner(sandboxed),
    )


def test_histories_are_committed():
    names = {p.stem for p in HISTORIES}
    assert {
        "lifecycle_take_profit",
        "partial_sell_ladder",
        "error_recovery",
        "lifecycle_take_profit_memo",
        "reality_shortfall",
        "reality_inventory",
        "slot_retry_take_profit",
        "portfolio_acquire_many",
        "notify_drain_given_up",
        "portfolio_late_requests",
        "slot_wait_take_profit",
        "slot_wait_stopped",
        "error_window_from_entry",
        "validator_reported",
        "validator_check_failed",
        "validator_blind",
        "validator_moved_queue",
        "validator_input_queue",
        "watch_handback",
        "slot_local_take_profit",
        "slot_local_stopped",
    } <= names


def _event_types(name: str) -> Counter[str]:
    events = json.loads((Path(__file__).parent / "histories" / f"{name}.json").read_text())
    return Counter(e["eventType"] for e in events["events"])


def test_memo_history_was_recorded_with_the_patch_and_old_ones_without():
    memo = "EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED"
    for old in ("lifecycle_take_profit", "partial_sell_ladder", "error_recovery"):
        types = _event_types(old)
        assert types[memo] == 0 and types["EVENT_TYPE_MARKER_RECORDED"] == 0
    new = _event_types("lifecycle_take_profit_memo")
    assert new["EVENT_TYPE_MARKER_RECORDED"] == 1  # the patch marker, once per run
    # A memo upsert with every search-attribute upsert of a transition, and more (the
    # POSITION checkpoint); the patch itself adds one search-attribute upsert.
    assert new[memo] >= new["EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"] - 1 > 0
    assert _patch_ids("lifecycle_take_profit_memo") == [STATUS_MEMO_PATCH]


def _patch_ids(name: str) -> list[str]:
    events = json.loads((Path(__file__).parent / "histories" / f"{name}.json").read_text())
    return [
        json.loads(
            base64.b64decode(
                e["markerRecordedEventAttributes"]["details"]["patch-data"]["payloads"][0]["data"]
            )
        )["id"]
        for e in events["events"]
        if e["eventType"] == "EVENT_TYPE_MARKER_RECORDED"
        and "patch-data" in e["markerRecordedEventAttributes"]["details"]  # not a local activity
    ]


REALITY = ("reality_shortfall", "reality_inventory")


def test_reality_histories_were_recorded_with_the_patch_and_older_ones_without():
    for old in (
        "lifecycle_take_profit",
        "partial_sell_ladder",
        "error_recovery",
        "lifecycle_take_profit_memo",
    ):
        assert EXCHANGE_REALITY_PATCH not in _patch_ids(old)
    for name in REALITY:
        assert _patch_ids(name) == [STATUS_MEMO_PATCH, EXCHANGE_REALITY_PATCH]
    # What they were recorded for: a shortfall written off, inventory carried and joined.
    assert _activities("reality_shortfall")["record_inventory"] == 1
    assert _activities("reality_inventory")["record_trade"] == 2


def _activities(name: str) -> Counter[str]:
    events = json.loads((Path(__file__).parent / "histories" / f"{name}.json").read_text())
    return Counter(
        e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
        for e in events["events"]
        if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
    )


@pytest.mark.parametrize("name", REALITY)
async def test_reality_histories_need_the_patched_code(monkeypatch, name):
    """Selling without checking the account first no longer replays them: the replay
    really runs the patched handlers (and old runs really take the old ones)."""
    monkeypatch.setattr(ExitPhases, "_place_sell", ExitPhases._place_sell_v1)
    path = next(p for p in HISTORIES if p.stem == name)
    with pytest.raises(NondeterminismError):
        await _replayer().replay_workflow(_history(path))


@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandboxed", "unsandboxed"])
@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_committed_history_replays(path, sandboxed):
    """Under both runners (WORKFLOW_SANDBOX): a worker can switch either way mid-run."""
    result = await _replayer(sandboxed=sandboxed).replay_workflow(_history(path))
    assert result.replay_failure is None


async def test_inserted_timer_is_caught_as_nondeterminism(monkeypatch):
    original = EntryPhases._warmup

    async def warmup_with_extra_timer(self):
        await workflow.sleep(1)  # a new command before the warm-up activity
        await original(self)

    monkeypatch.setattr(EntryPhases, "_warmup", warmup_with_extra_timer)
    with pytest.raises(NondeterminismError):
        await _replayer().replay_workflow(_history(HISTORIES[0]))


async def test_same_change_behind_patched_replays_cleanly(monkeypatch):
    original = EntryPhases._warmup

    async def warmup_patched(self):
        if workflow.patched("warmup-settle-timer"):
            await workflow.sleep(1)
        await original(self)

    monkeypatch.setattr(EntryPhases, "_warmup", warmup_patched)
    result = await _replayer().replay_workflow(_history(HISTORIES[0]))
    assert result.replay_failure is None


async def test_memo_history_needs_the_memo_upserts(monkeypatch):
    """Without the memo upserts the patched history no longer replays: the replay above
    really exercises the patched code path."""
    monkeypatch.setattr(TraderBase, "_publish_memo", lambda self: None)
    path = next(p for p in HISTORIES if p.stem == "lifecycle_take_profit_memo")
    with pytest.raises(NondeterminismError):
        await _replayer().replay_workflow(_history(path))


def test_slot_retry_history_was_recorded_with_the_patch_and_older_ones_without():
    for old in (*REALITY, "lifecycle_take_profit", "lifecycle_take_profit_memo"):
        assert SLOT_RETRY_PATCH not in _patch_ids(old)
    assert _patch_ids("slot_retry_take_profit") == [
        STATUS_MEMO_PATCH,
        EXCHANGE_REALITY_PATCH,
        SLOT_RETRY_PATCH,
    ]
    assert _activities("slot_retry_take_profit")["acquire_slot"] == 1


SLOT_WAIT = ("slot_wait_take_profit", "slot_wait_stopped")


def _slot_requests(name: str) -> list[tuple[str, bool]]:
    """(task queue, cancelled) of every acquire_slot the history scheduled."""
    events = json.loads((Path(__file__).parent / "histories" / f"{name}.json").read_text())
    scheduled = {
        e["eventId"]: e["activityTaskScheduledEventAttributes"]["taskQueue"]["name"]
        for e in events["events"]
        if e.get("activityTaskScheduledEventAttributes", {}).get("activityType", {}).get("name")
        == "acquire_slot"
    }
    cancelled = {
        e["activityTaskCancelRequestedEventAttributes"]["scheduledEventId"]
        for e in events["events"]
        if "activityTaskCancelRequestedEventAttributes" in e
    }
    return [(queue, event_id in cancelled) for event_id, queue in scheduled.items()]


def test_slot_wait_histories_were_recorded_with_the_patch_and_older_ones_without():
    for old in (*REALITY, "lifecycle_take_profit", "slot_retry_take_profit"):
        assert SLOT_WAIT_PATCH not in _patch_ids(old)
    for name in SLOT_WAIT:
        assert _patch_ids(name)[-2:] == [SLOT_RETRY_PATCH, SLOT_WAIT_PATCH]
    # On the slot queue; the stopped one cancelled, then released.
    [(queue, cancelled)] = _slot_requests("slot_wait_take_profit")
    assert queue.startswith("watch-") and queue.endswith("-slots") and not cancelled
    [(queue, cancelled)] = _slot_requests("slot_wait_stopped")
    assert queue.startswith("watch-") and queue.endswith("-slots") and cancelled
    assert _event_types("slot_wait_stopped")["EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED"]
    [(queue, _)] = _slot_requests("slot_retry_take_profit")
    assert queue.startswith("tq-")  # before the patch: the main queue


SLOT_LOCAL = ("slot_local_take_profit", "slot_local_stopped")


def _local_activity_markers(name: str) -> int:
    events = json.loads((Path(__file__).parent / "histories" / f"{name}.json").read_text())
    return sum(
        1
        for e in events["events"]
        if e.get("markerRecordedEventAttributes", {}).get("markerName") == "core_local_activity"
    )


def test_slot_local_histories_were_recorded_with_the_patch_and_older_ones_without():
    for old in (*REALITY, *SLOT_WAIT, "slot_retry_take_profit", "watch_handback"):
        assert SLOT_LOCAL_PATCH not in _patch_ids(old)
    assert _local_activity_markers("slot_local_stopped") == 1  # the attempt that timed out
    for name in SLOT_LOCAL:
        assert SLOT_LOCAL_PATCH in _patch_ids(name)
    # Granted by the local attempt: no acquire_slot activity at all (the second marker is
    # the stop's last_watch_beat).
    assert _slot_requests("slot_local_take_profit") == []
    assert _local_activity_markers("slot_local_take_profit") == 2
    # Unanswered locally: then the slot queue, whose wait the stop cancelled.
    assert _patch_ids("slot_local_stopped")[-1] == SLOT_WAIT_PATCH
    [(queue, cancelled)] = _slot_requests("slot_local_stopped")
    assert queue.endswith("-slots") and cancelled


async def test_the_slot_local_history_needs_the_local_attempt(monkeypatch):
    """Without the local attempt (the slot asked on the slot queue at once) the history no
    longer replays: the replay really runs it."""

    async def no_local_attempt(self, inp):
        return None

    monkeypatch.setattr(EntryPhases, "_acquire_slot_locally", no_local_attempt)
    path = next(p for p in HISTORIES if p.stem == "slot_local_take_profit")
    result = await _replayer().replay_workflow(_history(path), raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError)


async def test_the_stopped_slot_wait_history_needs_the_race(monkeypatch):
    """Awaiting the slot without the race (as before the patch) no longer replays it: the
    replay really runs the interruptible wait."""

    async def not_interruptible(self, inp):
        workflow.patched(SLOT_RETRY_PATCH)
        workflow.patched(SLOT_WAIT_PATCH)
        return await workflow.execute_activity(
            c.ACQUIRE_SLOT,
            inp,
            result_type=c.SlotGrant,
            task_queue=c.slot_task_queue(self.inp.watch_task_queue),
            start_to_close_timeout=timedelta(seconds=15),
        )

    monkeypatch.setattr(EntryPhases, "_acquire_slot", not_interruptible)
    path = next(p for p in HISTORIES if p.stem == "slot_wait_stopped")
    result = await _replayer().replay_workflow(_history(path), raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError)


def test_portfolio_history_has_a_batched_grant_and_a_release():
    events = json.loads(
        (Path(__file__).parent / "histories" / "portfolio_acquire_many.json").read_text()
    )
    names = [
        e.get("workflowExecutionUpdateAcceptedEventAttributes", {})
        .get("acceptedRequest", {})
        .get("input", {})
        .get("name")
        or e.get("workflowExecutionSignaledEventAttributes", {}).get("signalName")
        for e in events["events"]
    ]
    assert [n for n in names if n] == ["acquire_many", "release"]


def test_the_late_requests_history_refuses_answered_and_expired_decisions():
    """What the committed history proves replays: a released and a refused decision
    asked again, both refused; a request after its attempt ended, expired; then granted.
    (Update results are not commands: a Portfolio of the previous release, which would
    have granted the released one again, replays this history too, so no patch.)"""
    events = json.loads(
        (Path(__file__).parent / "histories" / "portfolio_late_requests.json").read_text()
    )["events"]
    answers = [
        [
            (g["granted"], g["expired"])
            for g in json.loads(base64.b64decode(o["success"]["payloads"][0]["data"]))["grants"]
        ]
        for e in events
        if (o := e.get("workflowExecutionUpdateCompletedEventAttributes", {}).get("outcome"))
    ]
    assert answers == [
        [(True, False), (False, False)],
        [(False, False), (False, False), (False, True), (True, False)],
    ]


@workflow.defn(name="Portfolio")
class _PortfolioBeforeBatching:
    """The Portfolio as it was before ``acquire_many`` (same run, queries and signals)."""

    @workflow.init
    def __init__(self, inp: c.PortfolioInput) -> None:
        self.slots: dict[str, str] = dict(inp.slots)

    @workflow.run
    async def run(self, inp: c.PortfolioInput) -> None:
        await workflow.wait_condition(lambda: workflow.info().is_continue_as_new_suggested())

    @workflow.signal
    def release(self, decision_id: str) -> None:
        self.slots.pop(decision_id, None)


async def test_the_portfolio_history_needs_the_acquire_many_handler():
    """Replayed by a Portfolio without the handler, the recorded Update fails: the replay
    really runs ``acquire_many``."""
    path = next(p for p in HISTORIES if p.stem == "portfolio_acquire_many")
    replayer = Replayer(workflows=[_PortfolioBeforeBatching], data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(_history(path), raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError)
    assert "WorkflowExecutionUpdateAccepted" in str(result.replay_failure)


def test_the_drain_history_gave_a_message_up_behind_its_patch():
    """Recorded with Telegram down for the entry message: the stop waited NOTIFY_DRAIN (a
    timer) and cancelled the notify activity. Older histories have no such marker."""
    for old in (*REALITY, "lifecycle_take_profit_memo", "slot_retry_take_profit"):
        assert BOUNDED_DRAIN_PATCH not in _patch_ids(old)
    assert _patch_ids("notify_drain_given_up")[-1] == BOUNDED_DRAIN_PATCH
    events = json.loads(
        (Path(__file__).parent / "histories" / "notify_drain_given_up.json").read_text()
    )["events"]
    scheduled = {
        e["eventId"]: e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
        for e in events
        if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
    }
    cancelled = [
        scheduled[e["activityTaskCancelRequestedEventAttributes"]["scheduledEventId"]]
        for e in events
        if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED"
    ]
    assert cancelled.count("notify") == 1, cancelled
    assert _event_types("notify_drain_given_up")["EVENT_TYPE_TIMER_STARTED"] >= 1


async def _fails_unsandboxed(name: str) -> None:
    """The committed history ``name`` no longer replays (with a monkeypatched workflow:
    unsandboxed, as the sandbox re-imports the workflow modules and would not see it)."""
    path = next(p for p in HISTORIES if p.stem == name)
    replayer = Replayer(
        workflows=[SymbolTrader, HybridValidator],
        data_converter=DATA_CONVERTER,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    result = await replayer.replay_workflow(_history(path), raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError), result.replay_failure


async def test_the_drain_history_needs_the_bounded_drain(monkeypatch):
    """Replayed by code that gives the message up at once (no patch marker, no timer),
    the history no longer matches: the replay really runs the bounded drain. (Code that
    waits unbounded is not caught: replay just ends with it still waiting.)"""

    async def at_once(self: Any) -> None:
        for task in self._notifications:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(Exception):
                await task

    monkeypatch.setattr(SymbolTrader, "_drain_background", at_once)
    await _fails_unsandboxed("notify_drain_given_up")


def test_the_error_window_history_waited_from_its_entry_behind_its_patch():
    """Recorded with every create of a buy failing: ERROR found no order and, behind the
    patch, waited out the window since it entered ERROR (a timer old code did not start)
    before its second look. Older histories have no such marker."""
    for old in (*REALITY, "error_recovery", "slot_retry_take_profit", "notify_drain_given_up"):
        assert ERROR_WINDOW_PATCH not in _patch_ids(old)
    assert _patch_ids("error_window_from_entry")[-1] == ERROR_WINDOW_PATCH
    assert _activities("error_window_from_entry")["reconcile"] == 2
    assert _event_types("error_window_from_entry")["EVENT_TYPE_TIMER_STARTED"] == 2  # + backoff


async def test_the_error_window_history_needs_the_patched_window(monkeypatch):
    """Replayed by code that counts the window from the decision (no timer), the history
    no longer matches: the replay really runs the patched path."""
    monkeypatch.setattr(RecoveryPhases, "_last_sent", lambda self: self.state.trade.order.placed_ts)
    await _fails_unsandboxed("error_window_from_entry")


def test_the_validator_history_checks_reports_and_continues_as_new():
    assert _activities("validator_reported") == {"hybrid_validate": 3, "notify": 1}
    types = _event_types("validator_reported")
    assert types["EVENT_TYPE_TIMER_STARTED"] == 3
    assert types["EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"] == 1


def test_the_failed_check_history_skipped_a_check_and_went_on():
    types = _event_types("validator_check_failed")
    assert types["EVENT_TYPE_ACTIVITY_TASK_FAILED"] == 1  # after its three attempts
    assert _activities("validator_check_failed") == {"hybrid_validate": 3, "notify": 1}
    assert types["EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"] == 1


async def test_the_validator_history_needs_its_notification(monkeypatch):
    """Without the divergence's notification it no longer replays: the replay above
    really runs the reporting path."""
    monkeypatch.setattr(HybridValidator, "_notify", lambda self, d: None)
    path = next(p for p in HISTORIES if p.stem == "validator_reported")
    # Unsandboxed: the sandbox would import the workflow's module afresh, unpatched.
    replayer = Replayer(
        workflows=[HybridValidator],
        data_converter=DATA_CONVERTER,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(_history(path))


def test_the_blind_history_notified_once_after_three_failed_checks():
    types = _event_types("validator_blind")
    assert types["EVENT_TYPE_ACTIVITY_TASK_FAILED"] == 3
    # One notification that it is blind, one for the unknown order reported after.
    assert _activities("validator_blind") == {"hybrid_validate": 5, "notify": 2}


async def test_the_blind_history_needs_its_notification(monkeypatch):
    """Without the failed-checks notification it no longer replays."""
    import workflows.hybrid_validator as hv

    monkeypatch.setattr(hv, "CHECKS_FAILED_NOTIFY", 99)
    await _fails_unsandboxed("validator_blind")


def _handed_back(name: str) -> list[str]:
    """The watches that completed after the workflow asked to cancel them (handed back)."""
    events = json.loads((Path(__file__).parent / "histories" / f"{name}.json").read_text())[
        "events"
    ]
    scheduled: dict[int, str] = {}
    cancel_requested: set[int] = set()
    out = []
    for e in events:
        if a := e.get("activityTaskScheduledEventAttributes"):
            scheduled[int(e["eventId"])] = a["activityType"]["name"]
        if a := e.get("activityTaskCancelRequestedEventAttributes"):
            cancel_requested.add(int(a["scheduledEventId"]))
        if (a := e.get("activityTaskCompletedEventAttributes")) and int(
            a["scheduledEventId"]
        ) in cancel_requested:
            out.append(scheduled[int(a["scheduledEventId"])])
    return out


def test_the_handback_history_was_recorded_with_the_patch_and_older_ones_without():
    newer = {"watch_handback", *SLOT_LOCAL}  # recorded with the patch
    for old in (p.stem for p in HISTORIES if p.stem not in newer):
        assert WATCH_HANDBACK_PATCH not in _patch_ids(old)
        assert _handed_back(old) == []
    assert WATCH_HANDBACK_PATCH in _patch_ids("watch_handback")
    # The pause's entry watch and the reconcile's exit watch, each cancelled and completed.
    assert _handed_back("watch_handback") == [str(c.WATCH_ENTRY), str(c.WATCH_EXIT)]


def test_the_handback_history_keeps_the_handed_back_state():
    """Each watch handed back (cancelled, then completed) had made progress beyond its own
    input, and the next watch of its kind starts from what it handed back: the workflow
    really kept it (not the checkpoint's state it started from)."""
    events = json.loads((Path(__file__).parent / "histories" / "watch_handback.json").read_text())
    scheduled: dict[int, tuple[str, dict[str, Any]]] = {}
    cancel_requested: set[int] = set()
    handed: list[tuple[str, dict[str, Any], dict[str, Any]]] = []  # kind, input, handed back
    kept: list[tuple[dict[str, Any], dict[str, Any]]] = []  # handed back, next input
    for e in events["events"]:
        if a := e.get("activityTaskScheduledEventAttributes"):
            kind = a["activityType"]["name"]
            if kind in (c.WATCH_ENTRY, c.WATCH_EXIT):
                state = _payload(a["input"])["state"]
                scheduled[int(e["eventId"])] = (kind, state)
                kept += [(back, state) for k, _, back in handed[len(kept) :] if k == kind]
        if a := e.get("activityTaskCancelRequestedEventAttributes"):
            cancel_requested.add(int(a["scheduledEventId"]))
        if (a := e.get("activityTaskCompletedEventAttributes")) and (
            sid := int(a["scheduledEventId"])
        ) in cancel_requested:
            kind, start = scheduled[sid]
            handed.append((kind, start, _payload(a["result"])["state"]))
    assert [k for k, _, _ in handed] == [c.WATCH_ENTRY, c.WATCH_EXIT]
    for _, start, back in handed:
        assert _rule_state(back) != _rule_state(start)  # progress since its checkpoint
    assert len(kept) == len(handed)
    for back, next_input in kept:
        assert _rule_state(next_input) == _rule_state(back)


def _payload(payloads: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(payloads["payloads"][0]["data"]))


def _rule_state(state: dict[str, Any]) -> dict[str, Any]:
    # The anchor's timestamp and the recheck are the workflow's to set, not the watch's.
    return {k: v for k, v in state.items() if k not in ("anchor_ts", "recheck")}


def test_the_moved_validator_history_continued_as_new_on_its_own_queue_behind_its_patch():
    """A validator started without ``run_queue`` (the previous release's) reported, was
    given its own queue and moved there after its next check; the older ones never ask."""
    for old in ("validator_reported", "validator_check_failed", "validator_blind"):
        assert _patch_ids(old) == []
    assert _patch_ids("validator_moved_queue") == [OWN_QUEUE_PATCH]
    # Reported before the move: the unknown order and the symbol with no SymbolTrader.
    assert _activities("validator_moved_queue")["notify"] == 2
    events = json.loads(
        (Path(__file__).parent / "histories" / "validator_moved_queue.json").read_text()
    )
    moved = events["events"][-1]
    assert moved["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"
    assert moved["workflowExecutionContinuedAsNewEventAttributes"]["taskQueue"]["name"] == (
        "validator-own"
    )


@pytest.mark.parametrize("name", ["validator_moved_queue", "validator_input_queue"])
async def test_the_moved_validator_history_needs_the_move(monkeypatch, name):
    """Replayed by code that stays on its queue, the history no longer matches: the replay
    really runs the move (asked for by a ``configure`` signal, or by the input's
    ``run_queue``)."""
    monkeypatch.setattr(HybridValidator, "_moving", lambda self: None)
    await _fails_unsandboxed(name)


def test_a_validator_whose_input_names_its_own_queue_moves_there_behind_its_patch():
    """Its input carries ``run_queue`` (another queue than the one it runs on): after its
    first check it continues as new there, behind the patch, with no ``configure``."""
    events = json.loads(
        (Path(__file__).parent / "histories" / "validator_input_queue.json").read_text()
    )["events"]
    started = events[0]["workflowExecutionStartedEventAttributes"]
    assert _payload(started["input"])["setup"]["run_queue"] == "validator-own"
    assert started["taskQueue"]["name"] != "validator-own"
    assert _patch_ids("validator_input_queue") == [OWN_QUEUE_PATCH]
    assert _event_types("validator_input_queue")["EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"] == 0
    assert _activities("validator_input_queue") == {"hybrid_validate": 1, "notify": 2}
    moved = events[-1]["workflowExecutionContinuedAsNewEventAttributes"]
    assert moved["taskQueue"]["name"] == "validator-own"
