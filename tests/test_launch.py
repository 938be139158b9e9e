"""The starter launches the watchlist concurrently, a bounded number at a time
(LAUNCH_CONCURRENCY), and stays idempotent: a relaunch finds every workflow running. No
worker runs here: only the launcher's own calls to a real dev server are exercised."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowHandle,
)
from temporalio.testing import WorkflowEnvironment

from trader.config import load_settings
from trader.runtime.launch import start_watchlist


class _Counting(Interceptor):
    """Counts the starts in flight at once (the bound the launcher must keep)."""

    def __init__(self) -> None:
        self.in_flight = self.most = self.calls = 0

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Outbound(next, self)


class _Outbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, counts: _Counting) -> None:
        super().__init__(next)
        self.counts = counts

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        c = self.counts
        c.calls += 1
        c.in_flight += 1
        c.most = max(c.most, c.in_flight)
        try:
            await asyncio.sleep(0.01)  # a slow server: let concurrent starts overlap
            return await super().start_workflow(input)
        finally:
            c.in_flight -= 1


async def test_a_watchlist_is_launched_concurrently_within_its_bound_and_idempotently(
    dev_env: WorkflowEnvironment,
) -> None:
    counts = _Counting()
    client = Client(
        dev_env.client.service_client,
        namespace=dev_env.client.namespace,
        data_converter=dev_env.client.data_converter,
        interceptors=[counts],
    )
    run = uuid.uuid4().hex[:6].upper()
    watchlist = [f"L{run}{n:02d}/USDT" for n in range(40)]
    settings = load_settings(
        None,
        watchlist=watchlist,
        launch_concurrency=8,
        task_queue=f"launch-{run}",
        exchange="paper",
    )
    ids = await start_watchlist(client, settings)
    assert len(ids) == 40 and len(set(ids)) == 40
    assert [i.rsplit(":", 1)[-1] for i in ids] == [s.replace("/", "-") for s in watchlist]
    assert 1 < counts.most <= 8  # concurrent, and never more than the bound
    again = await start_watchlist(client, settings)
    assert again == ids  # found running: no second workflow
    listed = [
        w.id
        async for w in client.list_workflows(
            f'WorkflowType = "SymbolTrader" AND TaskQueue = "launch-{run}"'
        )
    ]
    # Visibility is eventually consistent: it may still miss some, never holds more.
    assert set(listed) <= set(ids)
    for wf_id in ids:
        await client.get_workflow_handle(wf_id).terminate("test over")
