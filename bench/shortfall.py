"""The issue's reproduction of "the recorded position is larger than the free balance",
on a real local Temporal dev server (real time) with the paper exchange: after the buy,
the account's base balance is cut to 90 % (fees withheld in base, a manual sell), then the
stop-loss fires. Reports what the symbol does within ``--seconds``: ERROR entries, sell
orders, closed trades, the time from the stop-loss price to flat, the written-off amount.

    python -m bench.shortfall [--seconds 120] [--backoff 10]

Run it from a checkout of older code (same command) to see the loop it replaces.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from decimal import Decimal as D
from pathlib import Path

from bench.common import dev_server
from tests.workflows.harness import bench
from trader.core.market import OrderSide
from trader.core.phases import Phase


async def run(seconds: float, backoff: float) -> dict[str, object]:
    async with dev_server() as env, bench(env.client, Path(tempfile.mkdtemp())) as b:
        h = await b.start(fsm_backoff_base_seconds=backoff, fsm_max_retries=3)
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        s = await b.wait_phase(h, Phase.POSITION, timeout=30)
        b.exchange.set_balance("BTC", (s.trade.amount * D("0.9")).quantize(D("0.0001")))
        b.set_price("BTC/USDT", "95.00")  # stop-loss
        t0, flat_after = time.monotonic(), None
        while time.monotonic() - t0 < seconds:
            s = await b.state(h)
            if s.totals.trades_closed and flat_after is None:
                flat_after = time.monotonic() - t0
                break
            await asyncio.sleep(0.1)
        sells = [o for o in b.exchange.all_orders() if o.side is OrderSide.SELL]
        trades = await b.ledger.trades()
        return {
            "seconds_watched": round(time.monotonic() - t0, 1),
            "errors": s.error_count,
            "sell_orders": len(sells),
            "trades": len(trades),
            "time_to_flat_s": round(flat_after, 2) if flat_after is not None else None,
            "sold": str(sum((o.filled for o in sells), D(0))),
            "written_off": str(getattr(trades[0], "written_off", "n/a")) if trades else None,
            "net_pnl": str(trades[0].net_pnl) if trades else None,
            "base_left_on_account": str((await b.exchange.fetch_balance()).get("BTC", D(0))),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--backoff", type=float, default=10, help="FSM_BACKOFF_BASE_SECONDS")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.seconds, args.backoff)), indent=2))


if __name__ == "__main__":
    main()
