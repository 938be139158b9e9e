"""History per idle and held symbol-hour, and how fresh ``starter.py status`` is without it.

On a real local Temporal dev server with real workers and the paper exchange:

1. events per watch checkpoint, idle and held, over ``--checkpoints`` returns of a 1 s
   checkpoint, read from the real history; times the checkpoints an hour makes at the
   default ``watch_checkpoint_seconds`` (and at the previous default, 60 s);
2. events a symbol adds over ``--window`` s idle and ``--window`` s held at the default
   parameters while its price moves every ``--tick`` s without a decision (a real window,
   no extrapolation);
3. freshness: from a price set on the feed to ``status_rows`` (one ``list_workflows`` and
   one ``describe()`` per held symbol, as ``starter.py status`` refreshes) showing it, and
   to ``describe()`` showing it in an idle symbol's heartbeat, ``--samples`` times each.

    python -m bench.quiet_history [--checkpoints 6] [--window 120] [--samples 30]
        [--parts cost,window,fresh]

It runs on the code before this change too (copy it there, with ``scheduled_events`` of
``tests/workflows/test_quiet_history.py``): parts 1 and 2 as they are, part 3 without
``describe()``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from decimal import Decimal as D
from pathlib import Path

from bench.common import dev_server, latency_summary
from tests.workflows.harness import Bench, TraderHandle, bench
from tests.workflows.test_quiet_history import scheduled_events
from trader import contracts as c
from trader.core.params import TraderParams
from trader.core.phases import Phase
from trader.observe.status_table import status_rows, traders_query

DEFAULTS = TraderParams.model_fields
DEFAULT_CHECKPOINT_S = float(DEFAULTS["watch_checkpoint_seconds"].default)
PREVIOUS_CHECKPOINT_S = 60.0
# The shipped checkpoint and heartbeat timeout (the harness's are 5 s): the latter sets
# the idle heartbeat cadence.
SHIPPED = {
    "watch_checkpoint_seconds": DEFAULT_CHECKPOINT_S,
    "watch_heartbeat_timeout_seconds": DEFAULTS["watch_heartbeat_timeout_seconds"].default,
}
SHIPPED_HEARTBEAT = {"watch_heartbeat_timeout_seconds": SHIPPED["watch_heartbeat_timeout_seconds"]}


async def _per_checkpoint(h: TraderHandle, activity: str, n: int) -> float:
    while True:
        scheduled = scheduled_events(await h.fetch_history(), activity)
        if len(scheduled) >= n + 3:
            return (scheduled[n + 2] - scheduled[2]) / n  # from the third: side effects over
        await asyncio.sleep(0.5)


async def checkpoint_cost(b: Bench, n: int) -> dict[str, float]:
    h = await b.start(watch_checkpoint_seconds=1, **SHIPPED_HEARTBEAT)
    await b.wait_phase(h, Phase.IDLE)
    idle = await _per_checkpoint(h, str(c.WATCH_ENTRY), n)
    b.set_price("BTC/USDT", "97.90")
    await b.wait_phase(h, Phase.POSITION)
    held = await _per_checkpoint(h, str(c.WATCH_EXIT), n)
    await h.signal("shutdown", c.ShutdownRequest(close_position=True))
    await h.result()
    out = {"events_per_idle_checkpoint": idle, "events_per_held_checkpoint": held}
    for label, every in (
        ("default", DEFAULT_CHECKPOINT_S),
        ("previous_60s", PREVIOUS_CHECKPOINT_S),
    ):
        out[f"idle_hour_events_{label}"] = round(idle * 3600 / every, 1)
        out[f"held_hour_events_{label}"] = round(held * 3600 / every, 1)
    return out


async def _wiggle(b: Bench, symbol: str, prices: list[str], seconds: float, tick: float) -> None:
    end, i = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        b.set_price(symbol, prices[i % len(prices)])
        i += 1
        await asyncio.sleep(tick)


async def real_window(b: Bench, seconds: float, tick: float) -> dict[str, float]:
    h = await b.start("ETH/USDT", **SHIPPED)
    await b.wait_phase(h, Phase.IDLE)
    await asyncio.sleep(2)  # the IDLE transition's task is in
    before = len((await h.fetch_history()).events)
    await _wiggle(b, "ETH/USDT", ["2000", "2005", "1995", "2010"], seconds, tick)
    idle_added = len((await h.fetch_history()).events) - before
    b.set_price("ETH/USDT", "1950")  # a 2.5 % drop from 2,000: buys
    await b.wait_phase(h, Phase.POSITION)
    await asyncio.sleep(5)  # the entry's notification and its workflow task are in
    before = len((await h.fetch_history()).events)
    await _wiggle(b, "ETH/USDT", ["1955", "1960", "1952", "1958"], seconds, tick)
    held_added = len((await h.fetch_history()).events) - before
    return {
        "window_s": seconds,
        "tick_s": tick,
        "idle_window_events_added": idle_added,
        "held_window_events_added": held_added,
    }


async def freshness(b: Bench, samples: int) -> dict[str, object]:
    query = traders_query(b.task_queue)
    held = await b.start("ETH/USDT", **SHIPPED)
    idle = await b.start("BTC/USDT", **SHIPPED)
    await b.wait_phase(held, Phase.IDLE)
    await b.wait_phase(idle, Phase.IDLE)
    b.set_price("ETH/USDT", "1950")  # a 2.5 % drop: buys
    await b.wait_phase(held, Phase.POSITION)
    status_s: list[float] = []
    refresh_s: list[float] = []
    for i in range(samples):
        price = D(1955 + i % 10)  # inside TP/SL of a 1,950 entry
        b.set_price("ETH/USDT", str(price))
        t0 = time.monotonic()
        while True:
            r0 = time.monotonic()
            rows = {r.workflow_id: r for r in await status_rows(b.client, query)}
            refresh_s.append(time.monotonic() - r0)
            row = rows.get(held.id)
            if row and row.memo and row.memo.price == price:
                break
            await asyncio.sleep(0.05)
        status_s.append(time.monotonic() - t0)
        await asyncio.sleep(0.5)  # the next one a new price, not a race with this one
    out: dict[str, object] = {
        "held_price_to_status": latency_summary(status_s),
        "one_status_refresh": latency_summary(refresh_s),
    }
    try:  # (absent from the code before it: that run measures the status path only)
        from trader.observe.watch_live import watch_live
    except ImportError:
        return out
    describe_s: list[float] = []
    for i in range(samples):
        price = D("100.00") + D(i % 10) / 10  # up moves: no entry
        b.set_price("BTC/USDT", str(price))
        t0 = time.monotonic()
        while (seen := await watch_live(b.client, idle.id)) is None or seen.price != price:
            await asyncio.sleep(0.05)
        describe_s.append(time.monotonic() - t0)
    return out | {"idle_price_to_describe": latency_summary(describe_s)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoints", type=int, default=6)
    parser.add_argument("--window", type=float, default=120)
    parser.add_argument("--tick", type=float, default=1.0)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--parts", default="cost,window,fresh")
    args = parser.parse_args()
    parts = args.parts.split(",")
    result: dict[str, object] = {"load_avg_start": os.getloadavg()}
    async with dev_server() as env:
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("a", "b", "c"):
                (Path(tmp) / name).mkdir()
            if "cost" in parts:
                async with bench(env.client, Path(tmp) / "a") as b:
                    result |= await checkpoint_cost(b, args.checkpoints)
            if "window" in parts:
                async with bench(env.client, Path(tmp) / "b") as b:
                    result |= await real_window(b, args.window, args.tick)
            if "fresh" in parts:
                async with bench(env.client, Path(tmp) / "c") as b:
                    result |= await freshness(b, args.samples)
    result["load_avg_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
