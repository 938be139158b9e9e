"""Run the simulated Binance server as a process (e2e tests, demos, benchmarks).

    python -m trader.binance_sim --port 0 --ready-file /tmp/sim.url --data-dir /tmp/sim \\
        --static BTC/USDT=65000 --balance USDT=10000 --balance BTC=1
    python -m trader.binance_sim --replay ../shared/data/ohlcv --speed 300 \\
        --start 2018-01-15T00:00 --data-dir /tmp/sim --balance BTC=1
    python -m trader.binance_sim --lookup-lag 2.5 --fault-seed 7 \\
        --fault '{"endpoint": "POST /api/v3/order", "kind": "accept_then_drop",
                  "probability": 0.1, "count": null}'

Prints ``listening on http://127.0.0.1:PORT`` and writes the URL to ``--ready-file`` once
it accepts connections; SIGTERM or SIGINT stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from pydantic import ValidationError

from trader.binance_sim.config import SimConfig
from trader.binance_sim.faults import FaultRule
from trader.binance_sim.server import SimServer
from trader.exchange.feed import PriceFeed, StaticFeed
from trader.exchange.generated import GeneratedMarket, GeneratedMarketConfig, market_for
from trader.exchange.paper import PaperExchange


def _pairs(values: list[str], flag: str) -> dict[str, Decimal]:
    out = {}
    for v in values:
        key, sep, amount = v.partition("=")
        if not sep:
            raise SystemExit(f"{flag} expects NAME=NUMBER, got {v!r}")
        out[key] = Decimal(amount)
    return out


def _fault(raw: str) -> FaultRule:
    try:
        return FaultRule.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
        raise argparse.ArgumentTypeError(f"not a fault rule: {exc}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trader.binance_sim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, default=0, help="0: a free port (default)")
    p.add_argument("--ready-file", type=Path, help="write the base URL here when ready")
    p.add_argument("--data-dir", type=Path, help="orders.sqlite lives here (default: tmp)")
    feed = p.add_mutually_exclusive_group()
    feed.add_argument(
        "--static",
        action="append",
        default=[],
        metavar="SYMBOL=PRICE",
        help="a market with a fixed price, set later via POST /_sim/price",
    )
    feed.add_argument("--generated", action="store_true", help="seeded random-walk market")
    feed.add_argument(
        "--replay", type=Path, metavar="DIR", help="replay <BASE>_<QUOTE>-<tf>.csv files from DIR"
    )
    p.add_argument("--seed", type=int, default=7, help="--generated: the seed")
    p.add_argument(
        "--symbols",
        nargs="+",
        default=[],
        metavar="SYMBOL[=PRICE]",
        help="--generated: markets and start prices; --replay: which pairs",
    )
    p.add_argument(
        "--speed",
        type=Decimal,
        default=Decimal(60),
        help="--replay: replay seconds per real second",
    )
    p.add_argument("--start", help="--replay: start instant (UTC), e.g. 2018-01-15T00:00")
    p.add_argument("--api-key", default="sim-key")
    p.add_argument("--api-secret", default="sim-secret")
    p.add_argument("--fee-rate", type=Decimal, default=Decimal("0.001"))
    p.add_argument(
        "--balance",
        action="append",
        default=[],
        metavar="ASSET=AMOUNT",
        help="starting balance (applied to a fresh data dir only)",
    )
    p.add_argument(
        "--level-liquidity",
        type=Decimal,
        default=Decimal(50_000),
        help="quote value on each of the 5 book levels",
    )
    p.add_argument(
        "--lookup-lag",
        type=float,
        default=0,
        metavar="SECONDS",
        help="GET/DELETE order miss an order this young (wall-clock seconds)",
    )
    p.add_argument(
        "--list-lag",
        type=float,
        default=0,
        metavar="SECONDS",
        help="openOrders/allOrders/myTrades miss orders this young",
    )
    p.add_argument(
        "--duplicates",
        choices=["while_open", "always"],
        default="while_open",
        help="refuse a client id while its order is open (Binance), or always",
    )
    p.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="JSON",
        help="a fault rule armed at start (as POST /_sim/faults takes it)",
    )
    p.add_argument(
        "--fault-seed", type=int, default=0, help="seed of the probabilistic faults' draws"
    )
    return p


def sim_config(args: argparse.Namespace, feed: PriceFeed) -> SimConfig:
    return SimConfig(
        feed=feed,
        data_dir=args.data_dir,
        port=args.port,
        api_key=args.api_key,
        api_secret=args.api_secret,
        fee_rate=args.fee_rate,
        balances=_pairs(args.balance, "--balance"),
        level_liquidity_quote=args.level_liquidity,
        duplicate_client_ids=args.duplicates,
        lookup_lag_s=args.lookup_lag,
        list_lag_s=args.list_lag,
        fault_seed=args.fault_seed,
        faults=tuple(args.fault),
    )


def build_feed(args: argparse.Namespace, origin_ms: int) -> PriceFeed:
    if args.replay:
        from trader.exchange.replay import ReplayFeed

        start = datetime.fromisoformat(args.start) if args.start else None  # naive: UTC
        return ReplayFeed.from_dir(
            args.replay,
            symbols=[s.split("=")[0] for s in args.symbols] or None,
            speed=args.speed,
            start=start,
            origin_ms=origin_ms,
        )
    if args.generated:
        prices = _pairs([s if "=" in s else f"{s}=100" for s in args.symbols], "--symbols") or {
            "BTC/USDT": Decimal(65_000),
            "ETH/USDT": Decimal(3_000),
        }
        return GeneratedMarket(
            GeneratedMarketConfig(seed=args.seed, start_prices=prices), origin_ms=origin_ms
        )
    prices = _pairs(args.static, "--static") or {"BTC/USDT": Decimal(65_000)}
    feed = StaticFeed({s: market_for(s, p) for s, p in prices.items()})
    for symbol, price in prices.items():
        feed.set_price(symbol, price)
    return feed


def origin_ms(args: argparse.Namespace, now_ms: int) -> int:
    """When the market "started": a generated market keeps the origin stored in its data
    file, so a restarted server continues the same price path (as the paper mode does)."""
    if args.generated and args.data_dir:
        return PaperExchange.origin_ms_for(args.data_dir / "orders.sqlite", now_ms)
    return now_ms


async def serve(args: argparse.Namespace) -> None:
    config = sim_config(args, build_feed(args, origin_ms(args, int(time.time() * 1000))))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with SimServer(config) as srv:
        print(f"listening on {srv.url}", flush=True)
        if args.ready_file:
            tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
            tmp.write_text(srv.url + "\n")
            os.replace(tmp, args.ready_file)  # readers never see a half-written URL
        await stop.wait()
    print("stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
