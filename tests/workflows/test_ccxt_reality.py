"""Exchange reality through the real ccxt client and the local Binance server over HTTP:
a sell checks the account (GET /api/v3/account) and sells only what it holds, and a force
exit flattens a symbol stuck in ERROR at once."""

from __future__ import annotations

import time
from decimal import Decimal as D

from tests.exchange.sim_fixtures import settable_feed, sim_and_adapter
from tests.hang_guard import bounded
from tests.workflows.harness import Bench, TraderHandle, bench, path_of
from trader import contracts as c
from trader.binance_sim.faults import FaultRule
from trader.core.market import OrderSide
from trader.core.phases import Phase
from trader.core.sizing import round_down
from trader.core.state import CoinState

ORDER = "POST /api/v3/order"
USDT_ONLY = {"USDT": D("10000")}


async def _hold(b: Bench, h: TraderHandle) -> CoinState:
    await b.wait_phase(h, Phase.IDLE)
    b.set_price("BTC/USDT", "97.90")
    return await b.wait_phase(h, Phase.POSITION, timeout=30)


async def test_sell_through_ccxt_sells_what_the_account_holds(ts_env, tmp_path):
    async with (
        sim_and_adapter(tmp_path, balances=USDT_ONLY) as (srv, ex),
        bench(ts_env.client, tmp_path, exchange=ex, feed=settable_feed(srv)) as b,
    ):
        h = await b.start()
        s = await _hold(b, h)
        on_account = (await srv.exchange.fetch_balance())["BTC"]
        assert on_account == s.trade.amount  # Binance's base fee was accounted for
        short = round_down(on_account * D("0.9"), D("0.0001"))
        srv.exchange.set_balance("BTC", short)  # 10 % sold by hand on the exchange
        b.set_price("BTC/USDT", "101.50")
        s = await b.wait_phase(h, Phase.COOLDOWN, timeout=40)
        assert "error" not in path_of(s)
        sells = [f for f in srv.exchange.fills("BTC/USDT") if f.side is OrderSide.SELL]
        assert sum(f.amount for f in sells) == short
        [trade] = await b.ledger.trades()
        assert trade.sold_amount == short and trade.written_off == on_account - short
        assert srv.stats["GET /api/v3/account"] >= 1  # asked before selling
        assert (await srv.exchange.fetch_balance())["BTC"] == 0


async def test_force_exit_through_ccxt_flattens_a_symbol_in_error(dev_env, tmp_path):
    async with (
        sim_and_adapter(tmp_path, balances=USDT_ONLY) as (srv, ex),
        bench(dev_env.client, tmp_path, exchange=ex, feed=settable_feed(srv)) as b,
    ):
        h = await b.start(fsm_backoff_base_seconds=120)
        await _hold(b, h)
        srv.faults.add(FaultRule(endpoint=ORDER, kind="http_5xx", count=1000))
        b.set_price("BTC/USDT", "95.00")  # stop-loss; every sell now fails: ERROR
        await b.wait_phase(h, Phase.ERROR, timeout=60)
        srv.faults.clear()
        asked = time.monotonic()
        result = await bounded(
            h.execute_update(
                "request_exit", c.ForceExitRequest(reason="flatten"), result_type=c.ForceExitResult
            ),
            60,
            "request_exit",
        )
        assert result.accepted
        # Not the 120 s backoff: a bound far from both it and a loaded machine's slowness.
        await b.wait_phase(h, Phase.COOLDOWN, timeout=110)
        assert time.monotonic() - asked < 100
        [trade] = await b.ledger.trades()
        assert trade.exit_reason == "force_exit"
        # Binance's fee in BTC leaves less than one lot step: kept as inventory, on the books.
        assert trade.sold_amount == round_down(trade.bought_amount, D("0.0001"))
        assert trade.carried_amount == trade.bought_amount - trade.sold_amount
        assert (await srv.exchange.fetch_balance())["BTC"] == trade.carried_amount
