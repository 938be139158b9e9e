"""The last heartbeat of the calling workflow's own pending watch, as a local activity.

A watch cancelled while it is not running (in retry backoff, or waiting for a watch worker)
is cancelled by the server at once, with no heartbeat details: its progress since the last
checkpoint (up to ``watch_checkpoint_seconds`` old) would be lost. The workflow reads it
first with this ``describe()`` of itself, only when it interrupts a watch (a local activity:
a marker event, no task queue round trip); see ``WATCH_HANDBACK_PATCH`` in workflows/base.py.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio import activity
from temporalio.client import Client

from trader import contracts as c
from trader.observe.watch_live import heartbeat_detail, pending_watch

log = logging.getLogger(__name__)

DESCRIBE_TIMEOUT_S = 3.0
"""The describe's own deadline, well inside the local activity's 10 s start-to-close: an
attempt must end by itself. Core cancels one at its timeout, but temporalio 1.35 can lose
that cancel when the workflow is evicted (sdk-python #1837), and a local attempt still
running then holds the worker's shutdown forever. A describe answers in milliseconds."""


class WatchBeatActivities:
    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name=c.LAST_WATCH_BEAT)
    async def last_watch_beat(self, inp: c.LastBeatInput) -> c.LastBeatResult:
        info = activity.info()
        if info.workflow_id is None:  # not called from a workflow: nothing to read
            return c.LastBeatResult()
        pending = await pending_watch(
            self.client,
            info.workflow_id,
            run_id=info.workflow_run_id,
            name=inp.activity_type,
            rpc_timeout=timedelta(seconds=DESCRIBE_TIMEOUT_S),
        )
        if pending is None:
            return c.LastBeatResult()
        try:
            state = await heartbeat_detail(self.client, pending, -1)
        except Exception:  # undecodable (another codec?): the checkpoint's state stays
            log.exception("could not decode the heartbeat of %s", info.workflow_id)
            return c.LastBeatResult()
        return c.LastBeatResult(state=state if isinstance(state, dict) else None)
