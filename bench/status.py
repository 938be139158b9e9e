"""Measure, on a real local Temporal dev server:

1. one status-table refresh (``status_rows``: one visibility list call plus memo decoding,
   and rendering the frame) with N symbols started without a worker (search attributes and
   a status memo set at start, as a running symbol has them);
2. what the status memo costs in history: memo events per lifecycle and per POSITION
   checkpoint, from the real history of a trade run with real workers.

    python -m bench.status [--symbols 100] [--hold-seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

from rich.console import Console
from temporalio.api.enums.v1 import EventType
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment

from bench.common import dev_server
from tests.workflows.harness import TEST_PARAMS, bench
from trader import contracts as c
from trader import search as sa
from trader.core.phases import Phase
from trader.observe.status_table import build_table, status_rows, traders_query

MEMO = EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED


async def refresh_time(env: WorkflowEnvironment, n: int) -> None:
    queue = f"status-bench-{uuid.uuid4().hex[:6]}"  # no worker polls it
    phases = [Phase.POSITION, Phase.IDLE, Phase.ERROR, Phase.COOLDOWN]
    for i in range(n):
        symbol = f"S{i:03d}/USDT"
        await env.client.start_workflow(
            "SymbolTrader",
            c.TraderInput(
                symbol=symbol, params=TEST_PARAMS, portfolio_id="none", watch_task_queue=queue
            ),
            id=f"bench:{queue}:{i}",
            task_queue=queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.TRADING_SYMBOL, symbol),
                    SearchAttributePair(sa.TRADING_PHASE, phases[i % 4].value),
                    SearchAttributePair(sa.PHASE_SINCE, datetime.now(UTC)),
                ]
            ),
            memo={
                c.STATUS_MEMO_KEY: c.StatusMemo(
                    price=D("101.5"), entry=D("100"), pnl_pct=D("1.5"), note="bench"
                )
            },
        )
    query = traders_query(queue)
    while len(await status_rows(env.client, query)) < n:  # visibility catches up
        await asyncio.sleep(0.2)
    fetch, render = [], []
    console = Console(record=True, width=160, force_terminal=True, file=io.StringIO())
    for _ in range(20):
        t0 = time.perf_counter()
        rows = await status_rows(env.client, query)
        t1 = time.perf_counter()
        console.print(build_table(rows, show_idle=True))
        console.export_text()
        fetch.append(t1 - t0)
        render.append(time.perf_counter() - t1)
    print(
        f"{n} symbols, 20 refreshes: status_rows median {statistics.median(fetch) * 1000:.1f} ms"
        f" (max {max(fetch) * 1000:.1f}), render median {statistics.median(render) * 1000:.1f} ms"
    )
    async for wf in env.client.list_workflows(query):
        await env.client.get_workflow_handle(wf.id).terminate("bench over")


async def memo_cost(env: WorkflowEnvironment, hold_seconds: float) -> None:
    checkpoint = 2.0
    with tempfile.TemporaryDirectory() as tmp:
        async with bench(env.client, Path(tmp)) as b:
            h = await b.start(watch_checkpoint_seconds=checkpoint, max_hold_minutes=D(0))
            await b.wait_phase(h, Phase.IDLE)
            b.set_price("BTC/USDT", "97.90")
            await b.wait_phase(h, Phase.POSITION)
            await asyncio.sleep(hold_seconds)
            b.set_price("BTC/USDT", "101.50")
            await b.wait_phase(h, Phase.COOLDOWN)
            events = [e async for e in h.fetch_history_events()]
    types = Counter(e.event_type for e in events)
    scheduled = [
        e
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == c.WATCH_EXIT
    ]
    checkpoints = len(scheduled) - 1  # every re-armed watch follows a checkpoint
    first, last = scheduled[0].event_id, scheduled[-1].event_id
    between = [e for e in events if first <= e.event_id < last]
    memo_between = sum(e.event_type == MEMO for e in between)
    print(
        f"trade run to COOLDOWN: {len(events)} events, {types[MEMO]} memo upserts, "
        f"{types[EventType.EVENT_TYPE_MARKER_RECORDED]} patch marker"
    )
    print(
        f"held {hold_seconds:.0f} s at a {checkpoint:.0f} s checkpoint: {checkpoints} "
        f"checkpoints, {len(between)} events, {memo_between} of them memo "
        f"({len(between) / max(checkpoints, 1):.1f} events per checkpoint)"
    )
    per_checkpoint = len(between) / max(checkpoints, 1)
    print(
        f"=> per held hour at the default 60 s checkpoint: "
        f"+{60 * memo_between / max(checkpoints, 1):.0f} memo events "
        f"(of ~{60 * per_checkpoint:.0f} events in total)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--hold-seconds", type=float, default=30)
    args = parser.parse_args()
    async with dev_server() as env:
        await refresh_time(env, args.symbols)
        await memo_cost(env, args.hold_seconds)


if __name__ == "__main__":
    asyncio.run(main())
