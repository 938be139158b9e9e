"""Ticker requests at the exchange with and without the both-mode shadow: ``starter.py`` (its
own process) on the local Binance server's random-walk market, once ``FSM_MODE=fsm`` and
once ``FSM_MODE=both`` (the FSM primary, the legacy shadow), each for ``--seconds``; the
server counts every request it receives.

    python -m bench.both_tickers [--seconds 90] [--root DIR]

``--root``: the checkout whose ``starter.py`` runs (another worktree's, to measure a
version before or after a change). Prints one JSON object: per mode the ticker requests
per second, all requests per second, and the orders the server received.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import dev_server
from tests.e2e.helpers import SIM_KEYS, binance_config, kill, start_sim, write_config
from trader.binance_sim.control import SimControl
from trader.ledger import read_trades
from trader.runtime.process import hard_exit

ROOT = Path(__file__).resolve().parents[1]
WATCHLIST = ("BTC/USDT", "ETH/USDT")


async def measure(mode: str, *, seconds: float, root: Path, address: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-both-tickers-{mode}-") as tmp_:
        tmp = Path(tmp_)
        sim, url = start_sim(tmp, "--generated", "--balance", "USDT=10000")
        cfg = write_config(
            tmp / "cfg.toml",
            address=address,
            data_dir=tmp / "data",
            queue=f"bench-tickers-{mode}-{os.getpid()}",
            watchlist=WATCHLIST,
            extra=binance_config(url),
        )
        env = {**os.environ, **SIM_KEYS, "FSM_MODE": mode, "HYBRID_PRIMARY": "fsm"}
        log = (tmp / "starter.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "starter.py", "--config", str(cfg)],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            async with SimControl(url) as control:
                await asyncio.sleep(15)  # warm-up and the first watches
                await control.reset_stats()
                t0 = time.monotonic()
                await asyncio.sleep(seconds)
                stats = await control.stats()
                elapsed = time.monotonic() - t0
                orders = len(await control.orders())
        finally:
            kill(proc)
            kill(sim)
            log.close()
        ledger = tmp / "data" / "ledger.sqlite"
        trades = dict(Counter(t.engine for t in read_trades(ledger))) if ledger.exists() else {}
    tickers = sum(n for endpoint, n in stats.items() if "ticker" in endpoint)
    return {
        "ticker_requests_per_s": round(tickers / elapsed, 2),
        "requests_per_s": round(sum(stats.values()) / elapsed, 2),
        "orders_at_server": orders,
        "trades_by_engine": trades,
        "by_endpoint": stats,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"root": str(args.root), "seconds": args.seconds}
    for mode in ("fsm", "both"):
        # A dev server each: the workflow ids are per symbol, and a first run's would
        # still be running (with no worker) when the second starts.
        async with dev_server() as env:
            address = env.client.service_client.config.target_host
            out[mode] = await measure(mode, seconds=args.seconds, root=args.root, address=address)
    out["load"] = os.getloadavg()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--root", type=Path, default=ROOT)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2), flush=True)
    hard_exit(0)  # the Temporal runtime's threads may abort a normal interpreter exit
