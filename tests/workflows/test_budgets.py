"""A budget per quote currency: a BTC-quoted market is sized in BTC (QUOTE_BUDGETS), not with
TRADE_BUDGET's USDT-sized number, which would ask for 100 BTC."""

from __future__ import annotations

from decimal import Decimal as D

from tests.markets import ADA_BTC
from tests.workflows.harness import MARKETS, bench
from trader.core.phases import Phase
from trader.core.sizing import size_buy
from trader.exchange.feed import StaticFeed


async def test_a_btc_quoted_symbol_buys_with_its_own_quote_budget(ts_env, tmp_path):
    feed = StaticFeed({**MARKETS, ADA_BTC.symbol: ADA_BTC})
    prices = {"BTC/USDT": "100", "ADA/BTC": "0.00005300"}
    async with bench(ts_env.client, tmp_path, feed=feed, prices=prices) as b:
        b.exchange.set_balance("BTC", D("1"))
        h = await b.start("ADA/BTC", quote_budgets={"BTC": D("0.001")})
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("ADA/BTC", "0.00005190")  # 2.1 % below the anchor
        s = await b.wait_phase(h, Phase.POSITION)
        [ticker] = (await b.exchange.fetch_tickers(["ADA/BTC"])).values()
        assert s.trade.amount == size_buy(D("0.001"), ticker.ask, ADA_BTC).amount == 19
        assert s.trade.entry_cost <= D("0.001")
