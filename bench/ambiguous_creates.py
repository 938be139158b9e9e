"""Ambiguous creates under a lagging order query, at length (issue 8, item 9).

Real SymbolTrader workflows on a real Temporal dev server trade many symbols through the
real ccxt adapter against the local Binance server over HTTP, whose order query (and lists)
lag behind a fresh order, which accepts a final order's client id again, drops some create
responses and fails some requests with 5xx / 429 (tests/workflows/campaign.py). Prints the
decisions, the orders at the server, duplicates, faults fired and any disagreement between
the ledger, the account and the fills.

    python -m bench.ambiguous_creates [--symbols 8] [--trades 12] [--lookup-lag 2.5]
        [--list-lag 2.5] [--lost 0.1] [--errors 0.05] [--seed 7] [--fills-in-create]
        [--window 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from bench.common import dev_server
from tests.workflows.campaign import Campaign, run_campaign


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=8)
    parser.add_argument("--trades", type=int, default=12, help="trades per symbol")
    parser.add_argument("--lookup-lag", type=float, default=2.5)
    parser.add_argument("--list-lag", type=float, default=2.5)
    parser.add_argument("--lost", type=float, default=0.10, help="share of lost creates")
    parser.add_argument("--errors", type=float, default=0.05, help="share of 5xx/429")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--fills-in-create",
        action="store_true",
        help="Binance's FULL answer (default: no fills, fees read after)",
    )
    parser.add_argument(
        "--window",
        type=float,
        default=3.0,
        help="ORDER_CONSISTENCY_WINDOW_SECONDS (attempts are 5 s)",
    )
    args = parser.parse_args()
    campaign = Campaign(
        symbols=args.symbols,
        trades_per_symbol=args.trades,
        lookup_lag_s=args.lookup_lag,
        list_lag_s=args.list_lag,
        lost_create_share=args.lost,
        lost_creates_first=0,  # the share alone, as the figures in docs/ were measured
        error_share=args.errors,
        seed=args.seed,
        fills_in_create=args.fills_in_create,
        window_s=args.window,
        timeout_s=60.0 * args.trades,
    )
    async with dev_server() as env:
        with tempfile.TemporaryDirectory(prefix="bench-ambiguous-") as tmp:
            figures = await run_campaign(env.client, Path(tmp), campaign)
    print(json.dumps({"campaign": vars(args), **figures.as_dict()}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
