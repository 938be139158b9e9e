"""Trigger -> order latency through the real ccxt path, measured at the exchange.

A SymbolTrader runs on a real Temporal dev server with real workers; its exchange is the
ccxt adapter talking HTTP to the local Binance-compatible server. The server records when
the price was set below the drop trigger and when the buy request arrived, both on its own
clock, so the figure covers hub poll + watch activity + workflow + order activity + ccxt.

    python -m bench.exchange_latency [--triggers 60] [--poll 0.5]
    python -m bench.exchange_latency --modes stream,0.5,0.05 --triggers 100   # side by side
    python -m bench.exchange_latency --modes stream,0.5,0.05 --triggers 100 --symbols 100
    python -m bench.exchange_latency --modes stream --runners sandboxed,unsandboxed

A mode is ``stream`` (the hub on ccxt.pro's book stream from the server's WebSocket, REST
only as its fallback) or a REST poll interval in seconds. ``--symbols N``: N - 1 more
symbols are subscribed at the hub (held by the bench, as N - 1 idle watches would hold
them: streamed, or polled in the same batch), while one symbol triggers at a time. Each
run prints its per-hop breakdown (bench/hops.py) after its totals.
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
from typing import Any

from temporalio.testing import WorkflowEnvironment

from bench import hops
from bench.common import REPEATED_TRADES, dev_server, latency_summary
from tests.exchange.sim_fixtures import sim_and_adapter
from tests.workflows.harness import bench
from trader.core.market import Ticker
from trader.core.phases import Phase
from trader.exchange.feed import StaticFeed
from trader.hub import MarketHub

SYMBOL = "BTC/USDT"


async def _hold(hub: MarketHub, symbol: str) -> None:
    """Keep ``symbol`` subscribed, as an idle watch would."""
    async with hub.subscription(symbol) as tickers:
        async for _ in tickers:
            pass


async def latency(
    env: WorkflowEnvironment,
    tmp: Path,
    triggers: int,
    poll: float,
    *,
    stream: bool = False,
    symbols: int = 1,
    sandboxed: bool = True,
) -> dict[str, Any]:
    samples: list[float] = []
    triggered: list[tuple[int, D, int]] = []  # (set_us, price, create_us)
    published: list[tuple[int, str, D]] = []
    # The sim's logs are bounded (100 symbols fill them in minutes): each trigger's window
    # of them is kept as it ends.
    requests: list[tuple[int, str, str]] = []
    frames: list[tuple[int, str]] = []

    def on_publish(symbol: str, ticker: Ticker) -> None:
        if symbol == SYMBOL:
            published.append((time.time_ns() // 1000, symbol, ticker.last))

    async with sim_and_adapter(
        tmp, balances={"USDT": D("1000000")}, streams=stream, extra_markets=symbols - 1
    ) as (srv, ex):
        # The server plays prices set by hand, which the bench sets too.
        assert isinstance(srv.feed, StaticFeed)
        async with bench(
            env.client,
            tmp,
            exchange=ex,
            feed=srv.feed,
            poll_interval_s=poll,
            sandboxed=sandboxed,
        ) as b:
            assert b.hub is not None
            b.hub.on_publish = on_publish
            others = [s for s in srv.feed.symbols if s.startswith("S")][: symbols - 1]
            holders = [asyncio.create_task(_hold(b.hub, s)) for s in others]
            h = await b.start(**REPEATED_TRADES)
            await b.wait_phase(h, Phase.IDLE, timeout=60)
            while stream and b.hub is not None and b.hub.source(SYMBOL) != "stream":
                await asyncio.sleep(0.05)
            price = D(100)
            for n in range(triggers):
                # The entry watch takes its anchor from its first price: a trigger set
                # before it looks would be its anchor (a streamed price arrives at once).
                while b.hub is not None and not b.hub.subscribers(SYMBOL):
                    await asyncio.sleep(0.005)
                await asyncio.sleep(0.2)
                seen = len(srv.exchange.all_orders())
                price = (price * D("0.97")).quantize(D("0.01"))  # 3 % below the anchor: fires
                event = srv.set_price(SYMBOL, price)
                while len(srv.exchange.all_orders()) == seen:
                    await asyncio.sleep(0.002)
                buy = srv.exchange.all_orders()[seen]
                samples.append((srv.api.arrivals[buy.id] - event["ts_us"]) / 1e6)
                triggered.append((event["ts_us"], price, srv.api.arrivals[buy.id]))
                set_us = event["ts_us"]
                requests.extend(r for r in srv.requests if r[0] >= set_us)
                frames.extend(f for f in srv.streams.sent_log if f[0] >= set_us and f[1] == SYMBOL)
                await b.wait_phase(h, Phase.POSITION, timeout=30)
                price = (price * D("1.02")).quantize(D("0.01"))  # take profit
                srv.set_price(SYMBOL, price)
                await b.wait_idle_after(h, n + 1, timeout=30)
            for task in holders:
                task.cancel()
            logs = hops.Logs(
                trader=await hops.run_chain(env.client, h.id),
                portfolio=await hops.run_chain(env.client, b.portfolio_id),
                requests=requests,
                frames=frames,
                publishes=published,
            )
    marks = [
        hops.marks(logs, symbol=SYMBOL, set_us=t, price=p, create_us=cr) for t, p, cr in triggered
    ]
    breakdown = hops.hops(marks)
    mode = "stream" if stream else f"rest {poll} s"
    return (
        {"mode": mode, "symbols": symbols, "triggers": len(samples), "poll_interval_s": poll}
        | latency_summary(samples)
        | {"hops": breakdown, "marks": marks}
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--triggers", type=int, default=60)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument(
        "--modes",
        default=None,
        help="comma-separated: stream and/or REST poll intervals (default: --poll alone)",
    )
    parser.add_argument("--symbols", type=int, default=1, help="subscribed, one triggering")
    parser.add_argument(
        "--runners",
        default="sandboxed",
        help="comma-separated: sandboxed and/or unsandboxed (WORKFLOW_SANDBOX), interleaved",
    )
    args = parser.parse_args()
    modes = (args.modes or str(args.poll)).split(",")
    runners = args.runners.split(",")
    if not set(runners) <= {"sandboxed", "unsandboxed"}:
        parser.error(f"--runners: sandboxed or unsandboxed, not {args.runners!r}")
    results = []
    async with dev_server() as env:
        for mode, runner in ((m, r) for m in modes for r in runners):
            with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
                stream = mode == "stream"
                poll = args.poll if stream else float(mode)
                result = await latency(
                    env,
                    Path(tmp),
                    args.triggers,
                    poll,
                    stream=stream,
                    symbols=args.symbols,
                    sandboxed=runner == "sandboxed",
                )
                results.append({"load_avg": os.getloadavg(), "runner": runner} | result)
                print(json.dumps(results[-1]), flush=True)
                print(f"{result['mode']}, {runner}, {args.symbols} symbol(s):", flush=True)
                print(hops.table(result["hops"]), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
