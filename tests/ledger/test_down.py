"""PostgreSQL stopped mid-run, then restarted: the sell still happens (the record runs
after it, in POST_TRADE), the record activity fails and is retried by Temporal (the row
is in its input, in history), ``trader_ledger_errors_total`` rises, and once the database
is back the trade row is there exactly once."""

from __future__ import annotations

import asyncio

from tests.ledger.conftest import fresh_pg_database
from tests.ledger.pg import PgServer
from tests.workflows.harness import bench
from trader.core.market import OrderSide, OrderStatus
from trader.core.phases import Phase
from trader.ledger import LedgerStore
from trader.observe.metrics import TraderMetrics


async def test_a_down_database_delays_the_trade_row_never_the_exit_nor_loses_it(
    fresh_ts_env, tmp_path, pg_server: PgServer
) -> None:
    url = await fresh_pg_database(pg_server)
    metrics = TraderMetrics("w-ledger")

    def errors() -> float:
        value = metrics.registry.get_sample_value(
            "trader_ledger_errors_total",
            {"call": "record_trade", "type": "ConnectionRefusedError", "worker": "w-ledger"},
        )
        return value or 0.0

    async with bench(fresh_ts_env.client, tmp_path, ledger_target=url, metrics=metrics) as b:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.POSITION)
        pg_server.stop()
        try:
            b.set_price("BTC/USDT", "101.50")  # take-profit
            s = await b.wait_phase(h, Phase.POST_TRADE)
            [sell] = [o for o in b.exchange.all_orders() if o.side is OrderSide.SELL]
            assert sell.status is OrderStatus.CLOSED and sell.filled == s.trade.sold_amount > 0
            for _ in range(200):  # the record activity's attempts fail and count
                if errors() >= 2:
                    break
                await asyncio.sleep(0.1)
            assert errors() >= 2
            assert (await b.state(h)).phase is Phase.POST_TRADE  # waiting, not failed
        finally:
            pg_server.start()
        s = await b.wait_phase(h, Phase.COOLDOWN, timeout=120)
        check = LedgerStore(url)
        [trade] = await check.trades()
        await check.close()
        assert trade.net_pnl == s.totals.realized_pnl and trade.exit_reason == "take_profit"
