"""The market hub's fan-out: one-symbol publishes per second with N watches subscribed,
and the CPU the idle watches cost.

Each publish carries one symbol's new ticker (a stream frame); every watch iterates its
symbol's stream as the watch activities do. The exchange never answers (no REST cycle
competes): this measures the hub's wake-ups alone, on one event loop (one core).

    python -m bench.hub_fanout [--watches 1000] [--publishes 2000] [--idle 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal

from trader.core.market import Ticker
from trader.hub import MarketHub


class _Silent:
    """An exchange whose ticker request never returns (paper-like: no stream)."""

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        await asyncio.sleep(3600)
        return {}


def _ticker(symbol: str, k: int) -> Ticker:
    price = Decimal(100 + k % 7)
    return Ticker(
        symbol=symbol, ts_ms=int(time.time() * 1000) + k, bid=price, ask=price, last=price
    )


async def measure(watches: int, publishes: int, idle_s: float) -> tuple[float, float, int]:
    """(publishes per second, idle CPU share of one core, tickers the watches received)."""
    hub = MarketHub(_Silent(), poll_interval_s=0.5)  # type: ignore[arg-type]
    symbols = [f"S{i}/USDT" for i in range(watches)]
    got = 0

    async def read(stream: AsyncIterator[Ticker]) -> None:
        nonlocal got
        async for _ in stream:
            got += 1

    async with contextlib.AsyncExitStack() as stack:
        streams = [await stack.enter_async_context(hub.subscription(s)) for s in symbols]
        readers = [asyncio.create_task(read(s)) for s in streams]
        await asyncio.sleep(0.5)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(idle_s)
        idle = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        got = 0
        t0 = time.perf_counter()
        for k in range(publishes):
            symbol = symbols[k % watches]
            await hub._publish({symbol: _ticker(symbol, k)})
            await asyncio.sleep(0)
        while got < publishes and time.perf_counter() - t0 < 120:
            await asyncio.sleep(0.001)  # every watch has its ticker
        rate = publishes / (time.perf_counter() - t0)
        for r in readers:
            r.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    await hub.stop()
    return rate, idle, got


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--watches", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--publishes", type=int, default=2000)
    ap.add_argument("--idle", type=float, default=3.0)
    args = ap.parse_args(argv)
    print(f"{'watches':>8} {'publishes/s':>12} {'idle CPU':>9} {'received':>9}")
    for n in args.watches:
        rate, idle, got = asyncio.run(measure(n, args.publishes, args.idle))
        print(f"{n:>8} {rate:>12.0f} {idle:>8.1%} {got:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
