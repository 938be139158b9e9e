"""The status table's live prices cost the server a bounded load: one refresh describes at
most LIVE_DESCRIBES held symbols at once, and a symbol read less than a heartbeat interval
ago is not described again (the table refreshes at 2 Hz on every worker)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from temporalio.client import (
    Client,
    DescribeWorkflowInput,
    Interceptor,
    OutboundInterceptor,
    WorkflowExecutionDescription,
)

from trader.contracts import StatusMemo
from trader.core.phases import Phase
from trader.observe import status_table
from trader.observe.status_table import LIVE_DESCRIBES, StatusRow, with_live


class _Describes(Interceptor):
    """Counts the client's describe() calls and the most in flight at once."""

    def __init__(self) -> None:
        self.calls = self.running = self.most = 0

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Counting(next, self)


class _Counting(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, seen: _Describes) -> None:
        super().__init__(next)
        self.seen = seen

    async def describe_workflow(self, input: DescribeWorkflowInput) -> WorkflowExecutionDescription:
        s = self.seen
        s.calls, s.running = s.calls + 1, s.running + 1
        s.most = max(s.most, s.running)
        try:
            await asyncio.sleep(0.05)  # hold the slot: concurrent calls overlap here
            return await super().describe_workflow(input)
        finally:
            s.running -= 1


def _held(n: int) -> list[StatusRow]:
    run = uuid.uuid4().hex[:8]
    memo = StatusMemo(price=1, entry=1)
    return [
        StatusRow(f"S{i}", Phase.POSITION.value, None, f"gone:{run}:{i}", memo) for i in range(n)
    ]


async def test_a_refresh_describes_a_bounded_number_at_once_and_caches(
    dev_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The 1 s heartbeat interval is shorter than the first refresh's three rounds of
    # describes can take on a loaded machine: an hour stands for it, and none for its end.
    monkeypatch.setattr(status_table, "_LIVE_TTL_S", 3600.0)
    seen = _Describes()
    client = Client(**{**dev_env.client.config(), "interceptors": [seen]})
    rows = _held(3 * LIVE_DESCRIBES)
    first = await with_live(client, rows)  # none of them exists: the memo's values stay
    assert first == rows
    assert seen.calls == len(rows) and seen.most == LIVE_DESCRIBES
    again = await with_live(client, rows)  # within a heartbeat interval: no new reads
    assert again == rows and seen.calls == len(rows)
    monkeypatch.setattr(status_table, "_LIVE_TTL_S", 0.0)
    assert await with_live(client, rows) == rows  # past it: each is read again
    assert seen.calls == 2 * len(rows) and seen.most == LIVE_DESCRIBES
