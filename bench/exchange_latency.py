"""Trigger -> order latency through the real ccxt path, measured at the exchange.

A SymbolTrader runs on a real Temporal dev server with real workers; its exchange is the
ccxt adapter talking HTTP to the local Binance-compatible server. The server records when
the price was set below the drop trigger and when the buy request arrived, both on its own
clock, so the figure covers hub poll + watch activity + workflow + order activity + ccxt.

    python -m bench.exchange_latency [--triggers 60] [--poll 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from decimal import Decimal as D
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from bench.common import REPEATED_TRADES, dev_server, latency_summary
from tests.exchange.sim_fixtures import sim_and_adapter
from tests.workflows.harness import bench
from trader.core.phases import Phase
from trader.exchange.feed import StaticFeed

SYMBOL = "BTC/USDT"


async def latency(
    env: WorkflowEnvironment, tmp: Path, triggers: int, poll: float
) -> dict[str, float]:
    samples: list[float] = []
    async with sim_and_adapter(tmp, balances={"USDT": D("1000000")}) as (srv, ex):
        # The server plays prices set by hand, which the bench sets too.
        assert isinstance(srv.feed, StaticFeed)
        async with bench(env.client, tmp, exchange=ex, feed=srv.feed, poll_interval_s=poll) as b:
            h = await b.start(**REPEATED_TRADES)
            await b.wait_phase(h, Phase.IDLE, timeout=60)
            price = D(100)
            for n in range(triggers):
                seen = len(srv.exchange.all_orders())
                price = (price * D("0.97")).quantize(D("0.01"))  # 3 % below the anchor: fires
                event = srv.set_price(SYMBOL, price)
                while len(srv.exchange.all_orders()) == seen:
                    await asyncio.sleep(0.002)
                buy = srv.exchange.all_orders()[seen]
                samples.append((srv.api.arrivals[buy.id] - event["ts_us"]) / 1e6)
                await b.wait_phase(h, Phase.POSITION, timeout=30)
                price = (price * D("1.02")).quantize(D("0.01"))  # take profit
                srv.set_price(SYMBOL, price)
                await b.wait_idle_after(h, n + 1, timeout=30)
    return {"triggers": len(samples), "poll_interval_s": poll} | latency_summary(samples)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--triggers", type=int, default=60)
    parser.add_argument("--poll", type=float, default=0.5)
    args = parser.parse_args()
    async with dev_server() as env:
        with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
            print(json.dumps(await latency(env, Path(tmp), args.triggers, args.poll), indent=2))


if __name__ == "__main__":
    asyncio.run(main())
