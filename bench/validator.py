"""Measure the HybridValidator on a real local Temporal dev server: history events per run
and per check, and the wall time of one check, with N real SymbolTraders (paper exchange,
real SQLite ledger) of which some hold a position.

    python -m bench.validator [--symbols 100] [--holding 10] [--checks 100] [--interval 1]

With ``--binance``: the requests one check costs the account at the local Binance server
(trader/binance_sim counts them), through the real ccxt adapter, the validator's activity
run ``--checks`` times (no SymbolTrader: the exchange side of a ``--symbols`` watchlist);
``--per-symbol`` as an exchange without an all-symbols open-orders listing (one request
per symbol on the order path, as every exchange was before review M7).

    python -m bench.validator --binance [--symbols 100] [--checks 5] [--per-symbol]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal as D
from pathlib import Path

import ccxt
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.validator import ValidatorActivities, divergence_log_path
from bench.common import dev_server
from tests.exchange.sim_fixtures import generated_markets, sim_and_adapter
from tests.workflows.harness import bench
from tests.workflows.validator_rig import validator
from trader import contracts as c
from trader.core.divergence import DivergenceTracker
from trader.core.market import MarketInfo, Order
from trader.core.phases import Phase
from trader.exchange.ccxt_adapter import CcxtExchange
from trader.exchange.feed import StaticFeed
from trader.ledger import LedgerStore

SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
STARTED = EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
COMPLETED = EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED


def _market(i: int) -> MarketInfo:
    return MarketInfo(
        symbol=f"S{i:03d}/USDT",
        base=f"S{i:03d}",
        quote="USDT",
        price_tick=D("0.01"),
        amount_step=D("0.0001"),
        min_amount=D("0.0001"),
        min_cost=D("5"),
    )


def _ts(e: object) -> datetime:
    return e.event_time.ToDatetime()  # type: ignore[attr-defined, no-any-return]


async def main(args: argparse.Namespace) -> None:
    markets = {m.symbol: m for m in map(_market, range(args.symbols))}
    prices = {s: "100" for s in markets}
    async with dev_server() as env:
        with tempfile.TemporaryDirectory() as tmp:
            feed = StaticFeed(markets)
            async with bench(env.client, Path(tmp), feed=feed, prices=prices) as b:
                handles = [
                    await b.start(s, trade_budget=D("50"), max_trades=args.symbols) for s in markets
                ]
                for h in handles:
                    await b.wait_phase(h, Phase.IDLE, timeout=300)
                for s in list(markets)[: args.holding]:
                    b.set_price(s, "97.90")
                for h in handles[: args.holding]:
                    await b.wait_phase(h, Phase.POSITION, timeout=300)
                t0 = time.monotonic()
                async with validator(
                    b,
                    Path(tmp),
                    interval_s=args.interval,
                    checks_per_run=args.checks,
                    watchlist=tuple(markets),
                ) as v:
                    await v.wait_checks(args.checks + 1, timeout=args.checks * 30)
                    wall = time.monotonic() - t0
                    first = env.client.get_workflow_handle(v.handle.id, run_id=v.first_run_id)
                    history = await first.fetch_history()
                    divergences = len(v.lines())
    events = history.events
    types = Counter(e.event_type for e in events)
    starts = {e.event_id: _ts(e) for e in events if e.event_type == STARTED}
    checks = [
        (_ts(e) - starts[e.activity_task_completed_event_attributes.started_event_id])
        for e in events
        if e.event_type == COMPLETED
    ]
    seconds = sorted(c.total_seconds() for c in checks)
    print(
        f"{args.symbols} symbols ({args.holding} holding), {args.checks} checks per run at "
        f"{args.interval:g} s: {len(events)} events in the first run "
        f"({len(events) / args.checks:.1f} per check; {types[SCHEDULED]} activities), "
        f"one check (activity started -> completed) median {statistics.median(seconds):.3f} s, "
        f"max {seconds[-1]:.3f} s; run wall time {wall:.1f} s; divergences logged: {divergences}"
    )


class PerSymbol(CcxtExchange):
    """The adapter as an exchange that lists open orders per symbol only."""

    async def fetch_all_open_orders(self) -> list[Order] | None:
        return None


async def binance(args: argparse.Namespace) -> None:
    async with dev_server() as env:
        with tempfile.TemporaryDirectory() as tmp:
            async with sim_and_adapter(Path(tmp), extra_markets=args.symbols) as (srv, ex):
                if args.per_symbol:
                    ex.__class__ = PerSymbol
                seconds = await _checks(env.client, ex, Path(tmp), args, srv.stats.clear)
                stats = dict(srv.stats)
    per_check = {k: v / args.checks for k, v in sorted(stats.items())}
    api = ccxt.binance().describe()["api"]["private"]["get"]
    listed = per_check.get("GET /api/v3/openOrders", 0)
    units = listed * (
        api["openOrders"]["cost"] if args.per_symbol else api["openOrders"]["noSymbol"]
    )
    units_on = "order-path client" if args.per_symbol else "validator's own client"
    print(
        f"{args.symbols} symbols, {args.checks} checks "
        f"({'per symbol' if args.per_symbol else 'all-symbols listing'}): "
        f"{sum(per_check.values()):g} requests per check {per_check}; open orders "
        f"{units:g} ccxt units per check on the {units_on}, balances "
        f"{api['account']['cost']:g} on the validator's own client; one check "
        f"median {statistics.median(seconds):.3f} s, max {max(seconds):.3f} s"
    )


async def _checks(
    client: Client, ex: CcxtExchange, tmp: Path, args: argparse.Namespace, reset: Callable[[], None]
) -> list[float]:
    """Seconds per check; before each, the validator's own throttler is let refill (the
    listing's 16 units: 16 s at its 5 % share of ccxt's default), as at a 60 s interval."""
    acts = ValidatorActivities(
        client, ex, LedgerStore(tmp / "ledger.sqlite"), divergence_log=divergence_log_path(tmp)
    )
    watchlist = sorted(generated_markets(args.symbols))
    setup = c.ValidatorSetup(exchange="binance", task_queue="bench-none", watchlist=watchlist)
    inp = c.ValidateInput(
        validator_id="bench", check=0, setup=setup, since_ts=0.0, tracker=DivergenceTracker()
    )
    settle = 16 * ex._audit.rateLimit / 1000
    await ActivityEnvironment().run(acts.validate, inp)  # markets loaded
    reset()
    seconds = []
    for i in range(args.checks):
        await asyncio.sleep(settle)
        t0 = time.monotonic()
        await ActivityEnvironment().run(acts.validate, inp.model_copy(update={"check": i + 1}))
        seconds.append(time.monotonic() - t0)
    return seconds


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--holding", type=int, default=10)
    parser.add_argument("--checks", type=int, default=100)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--binance", action="store_true", help="requests per check (see above)")
    parser.add_argument("--per-symbol", action="store_true", help="with --binance: no listing")
    parsed = parser.parse_args()
    asyncio.run(binance(parsed) if parsed.binance else main(parsed))
