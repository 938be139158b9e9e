"""Skipping time on the Java time-skipping test server with a deadline fit for a loaded machine."""

from __future__ import annotations

from datetime import timedelta

from temporalio.api.testservice.v1 import SleepRequest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

SKIP_DEADLINE = timedelta(minutes=3)
"""The sleep call's RPC deadline. ``env.sleep`` gets core's default for calls that are not
long polls (30 s of real time), and the server advances its clock only while nothing it
handed out (an activity, a workflow task) is outstanding. On CI, with the machine at full
load, a 15-minute skip right after a continue-as-new failed twice with "Timeout expired"
(a local fresh-clone run with other tests beside it, and CI on stop 18), although the
workflow had nothing pending: the same test passes alone and under two CPU burners. A
longer deadline keeps a slow server from failing the test; a clock that never unlocks
still fails it, in 3 minutes."""


async def skip(env: WorkflowEnvironment, seconds: float) -> None:
    """``env.sleep(seconds)``: on the time-skipping server, with ``SKIP_DEADLINE``."""
    if not env.supports_time_skipping_v1:
        await env.sleep(seconds)
        return
    target = await env.get_current_time() + timedelta(seconds=seconds)
    # Asked again once, for what is left of the skip (a first sleep the server carried out
    # after the deadline is not skipped twice): on CI the first 3 minutes ran out once more
    # (stop 23) with nothing pending; a clock that never unlocks still fails, after two.
    for attempt in range(2):
        left = (target - await env.get_current_time()).total_seconds()
        if left <= 0:
            return
        req = SleepRequest()
        req.duration.FromTimedelta(timedelta(seconds=left))
        try:
            await env.client.test_service.unlock_time_skipping_with_sleep(
                req, timeout=SKIP_DEADLINE
            )
            return
        except RPCError as err:
            if attempt or "timeout expired" not in str(err).lower():
                raise
