"""Measure the HybridValidator on a real local Temporal dev server: history events per run
and per check, and the wall time of one check, with N real SymbolTraders (paper exchange,
real SQLite ledger) of which some hold a position.

    python -m bench.validator [--symbols 100] [--holding 10] [--checks 100] [--interval 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import Counter
from datetime import datetime
from decimal import Decimal as D
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from bench.common import dev_server
from tests.workflows.harness import bench
from tests.workflows.validator_rig import validator
from trader.core.market import MarketInfo
from trader.core.phases import Phase
from trader.exchange.feed import StaticFeed

SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
STARTED = EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
COMPLETED = EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED


def _market(i: int) -> MarketInfo:
    return MarketInfo(
        symbol=f"S{i:03d}/USDT",
        base=f"S{i:03d}",
        quote="USDT",
        price_tick=D("0.01"),
        amount_step=D("0.0001"),
        min_amount=D("0.0001"),
        min_cost=D("5"),
    )


def _ts(e: object) -> datetime:
    return e.event_time.ToDatetime()  # type: ignore[attr-defined, no-any-return]


async def main(args: argparse.Namespace) -> None:
    markets = {m.symbol: m for m in map(_market, range(args.symbols))}
    prices = {s: "100" for s in markets}
    async with dev_server() as env:
        with tempfile.TemporaryDirectory() as tmp:
            feed = StaticFeed(markets)
            async with bench(env.client, Path(tmp), feed=feed, prices=prices) as b:
                handles = [
                    await b.start(s, trade_budget=D("50"), max_trades=args.symbols) for s in markets
                ]
                for h in handles:
                    await b.wait_phase(h, Phase.IDLE, timeout=300)
                for s in list(markets)[: args.holding]:
                    b.set_price(s, "97.90")
                for h in handles[: args.holding]:
                    await b.wait_phase(h, Phase.POSITION, timeout=300)
                t0 = time.monotonic()
                async with validator(
                    b,
                    Path(tmp),
                    interval_s=args.interval,
                    checks_per_run=args.checks,
                    watchlist=tuple(markets),
                ) as v:
                    await v.wait_checks(args.checks + 1, timeout=args.checks * 30)
                    wall = time.monotonic() - t0
                    first = env.client.get_workflow_handle(v.handle.id, run_id=v.first_run_id)
                    history = await first.fetch_history()
                    divergences = len(v.lines())
    events = history.events
    types = Counter(e.event_type for e in events)
    starts = {e.event_id: _ts(e) for e in events if e.event_type == STARTED}
    checks = [
        (_ts(e) - starts[e.activity_task_completed_event_attributes.started_event_id])
        for e in events
        if e.event_type == COMPLETED
    ]
    seconds = sorted(c.total_seconds() for c in checks)
    print(
        f"{args.symbols} symbols ({args.holding} holding), {args.checks} checks per run at "
        f"{args.interval:g} s: {len(events)} events in the first run "
        f"({len(events) / args.checks:.1f} per check; {types[SCHEDULED]} activities), "
        f"one check (activity started -> completed) median {statistics.median(seconds):.3f} s, "
        f"max {seconds[-1]:.3f} s; run wall time {wall:.1f} s; divergences logged: {divergences}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--holding", type=int, default=10)
    parser.add_argument("--checks", type=int, default=100)
    parser.add_argument("--interval", type=float, default=1.0)
    asyncio.run(main(parser.parse_args()))
