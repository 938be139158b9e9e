"""Exchange requests per market-data cycle for 1, 10 and 100 watched symbols.

The real ccxt client (through the adapter and the hub) polls the local Binance-compatible
server, which counts every request it receives; the hub is subscribed to N symbols as N
watch activities would be.

    python -m bench.market_requests [--cycles 50] [--poll 0.05] [--chunk 100]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from tests.exchange.sim_fixtures import generated_markets, sim_and_adapter
from tests.exchange.test_hub_requests import TICKERS
from trader.hub import MarketHub


async def measure(n: int, *, cycles: int, poll: float, chunk: int) -> tuple[float, float, float]:
    """(ticker requests per cycle, seconds per cycle, requests of any kind per cycle)."""
    with tempfile.TemporaryDirectory(prefix="bench-market-") as tmp:
        async with sim_and_adapter(Path(tmp), extra_markets=100, tickers_chunk_size=chunk) as (
            srv,
            ex,
        ):
            hub = MarketHub(ex, poll_interval_s=poll)
            symbols = sorted(generated_markets(100))[:n]
            streams = [hub.subscription(s) for s in symbols]
            iters = [await s.__aenter__() for s in streams]
            await anext(iters[0])
            srv.stats.clear()
            start, t0 = hub.cycles, time.monotonic()
            while hub.cycles < start + cycles:
                await asyncio.sleep(0.005)
            done, elapsed = hub.cycles - start, time.monotonic() - t0
            tickers, total = srv.stats[TICKERS], sum(srv.stats.values())
            for s in streams:
                await s.__aexit__(None, None, None)
            await hub.stop()
    return tickers / done, elapsed / done, total / done


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--chunk", type=int, default=100)
    args = parser.parse_args(argv)
    print(f"{args.cycles} hub cycles, poll {args.poll} s, tickers_chunk_size {args.chunk}")
    print("| symbols | ticker/24hr requests per cycle | all requests per cycle | s per cycle |")
    print("|---|---|---|---|")
    for n in (1, 10, 100):
        per_cycle, seconds, total = await measure(
            n, cycles=args.cycles, poll=args.poll, chunk=args.chunk
        )
        print(f"| {n} | {per_cycle:.2f} | {total:.2f} | {seconds:.3f} |")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
