"""What a symbol's running watch last saw, read from its heartbeat details.

The watch activity heartbeats a ``WatchLive`` (price, anchor, trailing level) with its rule
state; ``describe()`` returns the pending activity's last heartbeat. This costs no history
event (a heartbeat is not one, nor is ``describe()``) and needs no worker (a query would wake
the workflow on one, and its state is only as fresh as the last checkpoint anyway). The Web
UI shows the same details on the workflow's pending activity.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.service import RPCError

from trader import contracts as c

_WATCHES = frozenset({str(c.WATCH_ENTRY), str(c.WATCH_EXIT)})


async def watch_live(client: Client, workflow_id: str) -> c.WatchLive | None:
    """The running watch's last ``WatchLive``; None when no watch runs, it has not
    heartbeated yet (or predates ``WatchLive``), or the workflow cannot be described."""
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return None  # gone or the server busy: the caller keeps what it had
    for pending in desc.raw_description.pending_activities:
        if pending.activity_type.name not in _WATCHES:
            continue
        payloads = pending.heartbeat_details.payloads
        if len(payloads) <= c.WATCH_LIVE_DETAIL + 1:
            continue  # a heartbeat without it (before WatchLive, or none yet)
        [seen] = await client.data_converter.decode([payloads[c.WATCH_LIVE_DETAIL]])
        if isinstance(seen, dict):
            return c.WatchLive.model_validate(seen)
    return None
