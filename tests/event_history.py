"""Reading a workflow's event history (``handle.fetch_history()``): what it scheduled and
how many attempts its activities took."""

from __future__ import annotations

import json
from typing import Any

from temporalio.client import WorkflowHistory

from trader import contracts as c


def scheduled_inputs(history: WorkflowHistory, activity_name: str) -> list[dict[str, Any]]:
    """The inputs ``activity_name`` was scheduled with, in order (once per scheduling: a
    retry is an attempt of the same scheduling)."""
    return [
        json.loads(ev.activity_task_scheduled_event_attributes.input.payloads[0].data)
        for ev in history.events
        if ev.HasField("activity_task_scheduled_event_attributes")
        and ev.activity_task_scheduled_event_attributes.activity_type.name == activity_name
    ]


def decided_client_ids(history: WorkflowHistory) -> list[str]:
    """The client order ids the workflow scheduled ``place_order`` with (its decisions)."""
    return [inp["client_order_id"] for inp in scheduled_inputs(history, c.PLACE_ORDER)]


def started_attempts(history: WorkflowHistory, activity_name: str) -> list[int]:
    """The attempt number each started ``activity_name`` reached, in order (the history
    records an activity's start once, with its last attempt)."""
    scheduled: dict[int, str] = {}
    attempts = []
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = attrs.activity_type.name
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if scheduled.get(started.scheduled_event_id) == activity_name:
                attempts.append(started.attempt)
    return attempts
