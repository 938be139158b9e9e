"""``last_watch_beat`` bounds its own describe: it runs as a local activity, whose cancel on
a worker's eviction temporalio 1.35 can lose (sdk-python #1837), and an attempt that never
returns then holds the worker's shutdown. Through a real dev server, behind a TCP gate that
holds the request (a network that stalls)."""

from __future__ import annotations

import dataclasses
import time

import pytest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.watch_beat import DESCRIBE_TIMEOUT_S, WatchBeatActivities
from tests.hang_guard import bounded
from tests.workflows.tcp_gate import tcp_gate
from trader import contracts as c
from trader.runtime.converter import DATA_CONVERTER


async def test_a_describe_the_server_never_answers_fails_the_attempt_in_its_own_time(
    dev_env: WorkflowEnvironment,
) -> None:
    async with tcp_gate(dev_env.client.service_client.config.target_host) as gate:
        stalled = await Client.connect(gate.target, data_converter=DATA_CONVERTER)
        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, is_local=True, workflow_id="trader:x:y:z")
        beat = WatchBeatActivities(stalled).last_watch_beat
        gate.open.clear()  # the describe waits in the proxy, neither answered nor failed
        started = time.monotonic()
        with pytest.raises(RPCError):
            await bounded(
                env.run(beat, c.LastBeatInput(activity_type=str(c.WATCH_ENTRY))),
                DESCRIBE_TIMEOUT_S + 20,
                "last_watch_beat's describe",
            )
        assert time.monotonic() - started < DESCRIBE_TIMEOUT_S + 5
