"""Measure, on a real local Temporal dev server with real workers and the paper exchange:

1. trigger -> order latency: from the moment the price crosses the drop trigger (set on a
   StaticFeed) to the buy order reaching the paper exchange (its accept timestamp);
2. history events of one complete trade lifecycle (WARMUP ... COOLDOWN -> IDLE), read from
   the real history;
3. history events per idle watch checkpoint, and so per idle symbol-hour.

    python -m bench.lifecycle [--triggers 60] [--poll 0.5] [--idle-seconds 120]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from decimal import Decimal as D
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from bench.common import REPEATED_TRADES, dev_server, latency_summary
from tests.workflows.harness import bench
from trader.core.phases import Phase


def _phase_upserts(history: WorkflowHistory) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for e in history.events:
        if e.HasField("upsert_workflow_search_attributes_event_attributes"):
            upsert = e.upsert_workflow_search_attributes_event_attributes
            fields = upsert.search_attributes.indexed_fields
            if "TradingPhase" in fields:
                out.append((e.event_id, json.loads(fields["TradingPhase"].data)))
    return out


async def latency(
    env: WorkflowEnvironment, tmp: Path, triggers: int, poll: float
) -> dict[str, float]:
    samples: list[float] = []
    async with bench(env.client, tmp, poll_interval_s=poll) as b:
        h = await b.start(**REPEATED_TRADES)
        await b.wait_phase(h, Phase.IDLE)
        price = D(100)
        for _ in range(triggers):
            seen = len(b.exchange.all_orders())
            price = price * D("0.97")  # 3 % below the anchor (the last price): fires
            t0 = time.time()
            b.set_price("BTC/USDT", str(price.quantize(D("0.01"))))
            while len(b.exchange.all_orders()) == seen:
                await asyncio.sleep(0.002)
            buy = b.exchange.all_orders()[seen]
            samples.append(buy.ts_ms / 1000 - t0)
            await b.wait_phase(h, Phase.POSITION)
            price = price * D("1.02")  # take profit
            b.set_price("BTC/USDT", str(price.quantize(D("0.01"))))
            closed = len(samples)
            await b.wait_idle_after(h, closed, timeout=30)
        history = await h.fetch_history()
    ups = _phase_upserts(history)
    idles = [eid for eid, phase in ups if phase == "idle"]
    return (
        {"triggers": len(samples), "poll_interval_s": poll}
        | latency_summary(samples)
        | {
            "events_start_to_first_idle": idles[0],
            "events_one_trade_idle_to_idle": idles[1] - idles[0],
        }
    )


async def idle_cost(env: WorkflowEnvironment, tmp: Path, seconds: float) -> dict[str, float]:
    checkpoint = 10.0
    async with bench(env.client, tmp) as b:
        h = await b.start(watch_checkpoint_seconds=checkpoint)
        await b.wait_phase(h, Phase.IDLE)
        start = len((await h.fetch_history()).events)
        await asyncio.sleep(seconds)
        end = len((await h.fetch_history()).events)
    per_checkpoint = (end - start) / (seconds / checkpoint)
    return {
        "idle_seconds_measured": seconds,
        "checkpoint_s_measured": checkpoint,
        "events_per_idle_checkpoint": round(per_checkpoint, 2),
        "events_per_idle_hour_at_60s_checkpoint": round(per_checkpoint * 60),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--triggers", type=int, default=60)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--idle-seconds", type=float, default=120)
    args = parser.parse_args()
    async with dev_server() as env:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "a").mkdir()
            (Path(tmp) / "b").mkdir()
            result = await latency(env, Path(tmp) / "a", args.triggers, args.poll)
            result |= await idle_cost(env, Path(tmp) / "b", args.idle_seconds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
