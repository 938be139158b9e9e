"""The per-hop breakdown's arithmetic (bench/hops.py) on hand-built marks and events."""

from __future__ import annotations

import json

from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent, MarkerRecordedEventAttributes

from bench.hops import _local_slot, hops


def _marker(name: str, *, failed: bool = False) -> HistoryEvent:
    data = {"activity_type": name, "attempt": 1}
    return HistoryEvent(
        event_type=EventType.EVENT_TYPE_MARKER_RECORDED,
        marker_recorded_event_attributes=MarkerRecordedEventAttributes(
            marker_name="core_local_activity",
            details={"data": Payloads(payloads=[Payload(data=json.dumps(data).encode())])},
            failure=Failure(message="timed out") if failed else None,
        ),
    )


def test_a_hop_is_measured_from_the_last_mark_the_trigger_has() -> None:
    # The slot-local path has no workflow task between the grant and place_order.
    local = {"set": 0, "decide_start": 1000, "slot_start": 3000, "place_wft_done": 10_000}
    activity = {"set": 0, "decide_start": 2000, "decide_done": 4000, "place_wft_done": 20_000}
    rows = {r["hop"]: r for r in hops([local, activity])}
    assert rows["decide_start"]["n"] == 2 and rows["decide_start"]["p50_ms"] == 1.5
    assert rows["slot_start"]["n"] == 1 and rows["slot_start"]["p50_ms"] == 2.0
    assert rows["decide_done"]["n"] == 1 and rows["decide_done"]["p50_ms"] == 2.0
    # 7 ms after the local attempt's start, 16 ms after the deciding task's end.
    assert rows["place_wft_done"]["n"] == 2 and rows["place_wft_done"]["p50_ms"] == 11.5


def test_a_granted_local_slot_attempt_is_found_in_its_workflow_tasks_commands() -> None:
    assert _local_slot([_marker("last_watch_beat"), _marker("acquire_slot")])
    assert not _local_slot([_marker("acquire_slot", failed=True)])  # the slot queue next
    scheduled = HistoryEvent(event_type=EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    assert not _local_slot([scheduled, _marker("acquire_slot")])  # the activity path
    assert not _local_slot([_marker("last_watch_beat")])
