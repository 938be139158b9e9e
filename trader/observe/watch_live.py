"""What a symbol's running watch last saw, read from its heartbeat details.

The watch activity heartbeats a ``WatchLive`` (price, anchor, trailing level) with its rule
state; ``describe()`` returns the pending activity's last heartbeat. This costs no history
event (a heartbeat is not one, nor is ``describe()``) and needs no worker (a query would wake
the workflow on one, and its state is only as fresh as the last checkpoint anyway). The Web
UI shows the same details on the workflow's pending activity.
"""

from __future__ import annotations

from typing import Any

from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import Client
from temporalio.service import RPCError

from trader import contracts as c

_WATCHES = frozenset({str(c.WATCH_ENTRY), str(c.WATCH_EXIT)})


async def pending_watch(
    client: Client, workflow_id: str, *, run_id: str | None = None, name: str | None = None
) -> PendingActivityInfo | None:
    """The workflow's pending watch activity (``name``, or either kind), also between two
    attempts (its heartbeat details survive the retry backoff); None when none is pending."""
    desc = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
    for pending in desc.raw_description.pending_activities:
        if pending.activity_type.name == name or (
            name is None and pending.activity_type.name in _WATCHES
        ):
            return pending
    return None


async def heartbeat_detail(client: Client, pending: PendingActivityInfo, index: int) -> Any:
    """One decoded heartbeat detail of ``pending`` (negative: from the end); None when it
    has no such detail."""
    payloads = pending.heartbeat_details.payloads
    if not -len(payloads) <= index < len(payloads):
        return None
    [value] = await client.data_converter.decode([payloads[index]])
    return value


async def watch_live(client: Client, workflow_id: str) -> c.WatchLive | None:
    """The running watch's last ``WatchLive``; None when no watch runs, it has not
    heartbeated yet (or predates ``WatchLive``), or the workflow cannot be described."""
    try:
        pending = await pending_watch(client, workflow_id)
    except RPCError:
        return None  # gone or the server busy: the caller keeps what it had
    if pending is None or len(pending.heartbeat_details.payloads) <= c.WATCH_LIVE_DETAIL + 1:
        return None  # a heartbeat without it (before WatchLive, or none yet)
    seen = await heartbeat_detail(client, pending, c.WATCH_LIVE_DETAIL)
    return c.WatchLive.model_validate(seen) if isinstance(seen, dict) else None
