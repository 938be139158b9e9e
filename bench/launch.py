"""How long `starter.py` takes to launch a watchlist of N symbols (issue 13, fast launch).

    python -m bench.launch --symbols 1000            # a fresh launch, then a relaunch

A real dev server (in memory), no worker: this measures the launcher's own round trips
(per symbol: describe the last run, maybe read its result, start or find the workflow).
The relaunch finds every workflow running (idempotent: no second workflow).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from bench.common import dev_server
from trader.config import load_settings
from trader.runtime.launch import start_watchlist


async def main(symbols: int, concurrency: int | None) -> dict[str, float | int]:
    watchlist = [f"S{n:04d}/USDT" for n in range(symbols)]
    overrides: dict[str, object] = {"watchlist": watchlist}
    if concurrency is not None:
        overrides["launch_concurrency"] = concurrency
    settings = load_settings(None, **overrides)
    async with dev_server() as env:
        t0 = time.perf_counter()
        ids = await start_watchlist(env.client, settings)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = await start_watchlist(env.client, settings)
        second = time.perf_counter() - t0
        running = 0
        async for _ in env.client.list_workflows('WorkflowType = "SymbolTrader"'):
            running += 1
    assert ids == again and len(set(ids)) == symbols
    return {
        "symbols": symbols,
        "launch_s": round(first, 2),
        "relaunch_s": round(second, 2),
        "symbols_per_s": round(symbols / first, 1),
        "workflows_listed": running,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=None, help="LAUNCH_CONCURRENCY")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.symbols, args.concurrency)), indent=1))
