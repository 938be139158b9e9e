"""``ActivityEnvironment``s set up as Temporal would run one attempt of an activity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.testing import ActivityEnvironment


def attempt_env(
    activity_type: str,
    *,
    attempt: int = 1,
    details: Sequence[Any] = (),
    first_scheduled: datetime | None = None,
    queued_s: float = 0.0,
    timeout_s: float = 5.0,
    heartbeats: list[Any] | None = None,
) -> ActivityEnvironment:
    """An environment whose ``activity.info()`` is that of attempt ``attempt``: it sees the
    heartbeat ``details`` an earlier attempt recorded, was first scheduled at
    ``first_scheduled`` (now if not given), waited ``queued_s`` in the queue and may run
    ``timeout_s`` (start-to-close). Each heartbeat's details are appended to ``heartbeats``."""
    env = ActivityEnvironment()
    now = datetime.now(UTC)
    env.info = replace(
        env.info,
        activity_type=activity_type,
        attempt=attempt,
        heartbeat_details=list(details),
        scheduled_time=first_scheduled or now,
        current_attempt_scheduled_time=now - timedelta(seconds=queued_s),
        started_time=now,
        start_to_close_timeout=timedelta(seconds=timeout_s),
    )
    if heartbeats is not None:
        env.on_heartbeat = lambda *d: heartbeats.append(list(d))
    return env
