"""What a symbol's running watch last saw, read from its heartbeat details.

The watch activity heartbeats a ``WatchLive`` (price, anchor, trailing level) with its rule
state; ``describe()`` returns the pending activity's last heartbeat. This costs no history
event (a heartbeat is not one, nor is ``describe()``) and needs no worker (a query would wake
the workflow on one, and its state is only as fresh as the last checkpoint anyway). The Web
UI shows the same details on the workflow's pending activity.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import Client
from temporalio.service import RPCError

from trader import contracts as c

_WATCHES = frozenset({str(c.WATCH_ENTRY), str(c.WATCH_EXIT)})


async def pending_watch(
    client: Client,
    workflow_id: str,
    *,
    run_id: str | None = None,
    name: str | None = None,
    rpc_timeout: timedelta | None = None,
) -> PendingActivityInfo | None:
    """The workflow's pending watch activity (``name``, or either kind), also between two
    attempts (its heartbeat details survive the retry backoff); None when none is pending.
    ``rpc_timeout`` bounds the describe (None: the client's default, no deadline)."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    desc = await handle.describe(rpc_timeout=rpc_timeout)
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


LIVE_MAX_AGE = 3 * c.LIVE_HEARTBEAT
"""A heartbeat older than this is no live price: its attempt is lost (its worker gone, not
yet timed out) or the watch is between attempts; the caller shows the memo's instead.
Compared with this host's clock (the server's sets the heartbeat time)."""


async def watch_live(client: Client, workflow_id: str) -> c.WatchLive | None:
    """The running watch's last ``WatchLive``; None when no watch runs, it has not
    heartbeated within LIVE_MAX_AGE (or predates ``WatchLive``), is between attempts, or
    the workflow cannot be described."""
    try:
        pending = await pending_watch(client, workflow_id)
    except RPCError:
        return None  # gone or the server busy: the caller keeps what it had
    if pending is None or len(pending.heartbeat_details.payloads) <= c.WATCH_LIVE_DETAIL + 1:
        return None  # a heartbeat without it (before WatchLive, or none yet)
    if pending.state != PendingActivityState.PENDING_ACTIVITY_STATE_STARTED:
        return None  # a failed attempt's details, the next not started (retry backoff)
    beat = pending.last_heartbeat_time.ToDatetime(tzinfo=UTC)
    if datetime.now(UTC) - beat > LIVE_MAX_AGE:
        return None  # a lost attempt (its worker gone) still pending until its timeout
    seen = await heartbeat_detail(client, pending, c.WATCH_LIVE_DETAIL)
    if not isinstance(seen, dict) or c.PRICE_WAIT_KEY in seen:
        return None  # waiting for a fresh price: no live price (status shows why)
    return c.WatchLive.model_validate(seen)
