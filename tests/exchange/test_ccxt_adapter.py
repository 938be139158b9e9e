"""The ccxt adapter through the real ccxt client over HTTP against the local Binance server:
markets, tickers, orders, lookups, cancels, fees in base, partial fills, refusals."""

from __future__ import annotations

import asyncio
import logging
import re
from decimal import Decimal as D

import ccxt
import pytest
from pydantic import SecretStr

from tests.exchange.sim_fixtures import (
    KEY,
    MARKETS,
    SECRET,
    no_fills_in_create_response,
    settable_feed,
    sim_and_adapter,
)
from trader.core import errors as e
from trader.core.market import OrderRequest, OrderSide, OrderStatus, OrderType, TimeInForce
from trader.exchange.ccxt_adapter import CcxtExchange
from trader.exchange.ccxt_setup import ClientIdRule
from trader.runtime.launch import validate_watchlist

ORDER = "POST /api/v3/order"
TICKERS = "GET /api/v3/ticker/24hr"


def _req(
    coid: str,
    *,
    symbol: str = "BTC/USDT",
    side: OrderSide = OrderSide.BUY,
    amount: str = "1",
    price: str | None = "101",
    tif: TimeInForce = TimeInForce.IOC,
) -> OrderRequest:
    return OrderRequest(
        symbol=symbol,
        side=side,
        type=OrderType.LIMIT if price else OrderType.MARKET,
        amount=D(amount),
        price=D(price) if price else None,
        time_in_force=tif,
        client_order_id=coid,
    )


async def test_markets_loaded_once_with_exact_precision_and_minimums(tmp_path):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        results = await asyncio.gather(*(ex.load_markets() for _ in range(5)))
        assert all(r is results[0] for r in results)
        for symbol, expected in MARKETS.items():
            got = results[0][symbol]
            assert (got.price_tick, got.amount_step, got.min_amount, got.min_cost) == (
                expected.price_tick,
                expected.amount_step,
                expected.min_amount,
                expected.min_cost,
            ), symbol
        assert results[0]["ADA/BTC"].price_tick == D("0.00000001")
        assert srv.stats["GET /api/v3/exchangeInfo"] == 1
        assert sum(srv.stats.values()) == 1  # spot only: no futures, margin or currencies


async def test_tickers_batched_per_chunk_and_exact(tmp_path):
    async with sim_and_adapter(tmp_path, tickers_chunk_size=2) as (srv, ex):
        tickers = await ex.fetch_tickers(["BTC/USDT", "ETH/USDT", "ADA/BTC"])
        assert srv.stats[TICKERS] == 2  # chunks of 2: [BTC, ETH], [ADA]
        bid, ask = srv.exchange.top_of_book("ADA/BTC")
        assert (tickers["ADA/BTC"].bid, tickers["ADA/BTC"].ask) == (bid, ask)
        assert tickers["ADA/BTC"].last == D("0.000053")
        with pytest.raises(e.BadSymbol):
            await ex.fetch_tickers(["NOPE/USDT"])
        # ETH/USDT delisted at the exchange after the markets were loaded: the batch is
        # refused (-1121), the other symbols still get their tickers.
        del srv.engine._ids["ETHUSDT"]
        tickers = await ex.fetch_tickers(["BTC/USDT", "ETH/USDT", "ADA/BTC"])
        assert sorted(tickers) == ["ADA/BTC", "BTC/USDT"]
        srv.stats.clear()  # the next poll: one batch without the refused symbol
        tickers = await ex.fetch_tickers(["BTC/USDT", "ETH/USDT", "ADA/BTC"])
        assert sorted(tickers) == ["ADA/BTC", "BTC/USDT"] and srv.stats[TICKERS] == 1


async def test_buy_fee_in_base_from_fills_then_from_trades_on_lookup(tmp_path):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        created = await ex.create_order(_req("dtbuy1"))
        assert created.status is OrderStatus.CLOSED and created.filled == D("1")
        fills = srv.exchange.fills("BTC/USDT")
        fee_base = sum(f.fee for f in fills)
        assert all(f.fee_currency == "BTC" for f in fills) and fee_base > 0
        assert created.fee_base == fee_base
        assert created.average is not None
        assert created.fee == fee_base * created.average
        assert created.cost == sum(f.price * f.amount for f in fills)
        [server_order] = server_orders(srv)
        assert server_order.client_order_id == "dtbuy1"  # ours, no broker prefix
        assert await ex.fetch_order("BTC/USDT", "dtbuy1") == created  # fees remembered
        assert srv.stats["GET /api/v3/myTrades"] == 0
        # Another process (a restarted worker) only has GET order, which carries no fills:
        # it reads the order's trades, once.
        other = CcxtExchange(
            "binance", api_key=SecretStr(KEY), api_secret=SecretStr(SECRET), api_url=srv.url
        )
        try:
            looked_up = await other.fetch_order("BTC/USDT", "dtbuy1")
            assert await other.fetch_order("BTC/USDT", "dtbuy1") == looked_up
        finally:
            await other.close()
        assert (looked_up.fee, looked_up.fee_base, looked_up.filled, looked_up.average) == (
            created.fee,
            created.fee_base,
            created.filled,
            created.average,
        )
        assert srv.stats["GET /api/v3/myTrades"] == 1
        balance = await ex.fetch_balance()
        assert balance["BTC"] == D("1") + created.filled - fee_base


async def test_sell_on_a_btc_quoted_market_pays_fee_in_quote(tmp_path):
    async with sim_and_adapter(tmp_path, balances={"BTC": D("1"), "ADA": D("5000")}) as (srv, ex):
        sold = await ex.create_order(
            _req(
                "dtsell1", symbol="ADA/BTC", side=OrderSide.SELL, amount="3000", price="0.00005200"
            )
        )
        fills = srv.exchange.fills("ADA/BTC")
        assert sold.filled == D("3000") and sold.fee_base == 0
        assert sold.fee == sum(f.fee for f in fills) and all(f.fee_currency == "BTC" for f in fills)
        assert sold.price == D("0.000052")


async def test_resting_order_cancel_and_lookups(tmp_path):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        rest = await ex.create_order(_req("dtgtc1", price="90", tif=TimeInForce.GTC))
        assert rest.status is OrderStatus.OPEN and rest.filled == 0
        assert [o.client_order_id for o in await ex.fetch_open_orders("BTC/USDT")] == ["dtgtc1"]
        with pytest.raises(e.DuplicateClientOrderId):  # while it is open
            await ex.create_order(_req("dtgtc1", price="90", tif=TimeInForce.GTC))
        cancelled = await ex.cancel_order("BTC/USDT", "dtgtc1")
        assert cancelled.status is OrderStatus.CANCELED
        assert await ex.cancel_order("BTC/USDT", "dtgtc1") == cancelled  # final: no error
        with pytest.raises(e.OrderNotFound):
            await ex.fetch_order("BTC/USDT", "dtnever")


async def test_partial_fill_of_an_ioc_buy(tmp_path):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        srv.exchange.level_liquidity_quote = D("50")  # thin book: ~0.5 BTC per level
        srv.exchange.depth_levels = 2
        order = await ex.create_order(_req("dtpart1", amount="3", price="101"))
        assert order.status is OrderStatus.CANCELED and 0 < order.filled < order.amount
        assert order.filled == sum(f.amount for f in srv.exchange.fills("BTC/USDT"))


async def test_below_minimum_is_refused_before_sending(tmp_path):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        await ex.load_markets()
        with pytest.raises(e.InvalidOrder, match="below the market minimum"):
            await ex.create_order(_req("dtmin1", amount="0.00005"))  # < min amount
        with pytest.raises(e.InvalidOrder, match="minimum 5"):
            await ex.create_order(_req("dtmin2", amount="0.01", price="100"))  # 1 USDT < 5
        with pytest.raises(e.InvalidOrder, match="minimum 0.0001"):
            await ex.create_order(_req("dtmin3", symbol="ADA/BTC", amount="1", price="0.000053"))
        # An exchange whose ids not even a digest of ours can take (a too-long id is
        # otherwise sent as its digest, see below): refused, not sent.
        ex._ids = ClientIdRule(
            "newClientOrderId", "origClientOrderId", re.compile(r"[A-Z]{1,8}"), 8
        )
        with pytest.raises(e.InvalidOrder, match="client order id"):
            await ex.create_order(_req("x" * 37))
        assert srv.stats[ORDER] == 0


async def test_insufficient_funds_is_a_rejection(tmp_path):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        with pytest.raises(e.InsufficientFunds):
            await ex.create_order(_req("dtpoor1", amount="500", price="101"))
        assert srv.stats[ORDER] == 1 and server_orders(srv) == []


async def test_credentials_never_in_logs_reprs_or_errors(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    async with sim_and_adapter(tmp_path) as (srv, ex):
        await ex.create_order(_req("dtlog1"))
        await ex.fetch_order("BTC/USDT", "dtlog1")
        await ex.fetch_balance()
        texts = [caplog.text, repr(ex)]
        ex._ex.secret = "WRONG" + SECRET  # a bad secret: the server refuses the signature
        with pytest.raises(e.AuthenticationError) as err:
            await ex.fetch_balance()
        texts.append(str(err.value))
    assert "spot markets loaded" in caplog.text  # the capture saw the adapter's logs
    for text in texts:
        assert KEY not in text and SECRET not in text


def server_orders(srv):  # noqa: ANN201
    """The server's own order list (in-process: its paper engine)."""
    return srv.exchange.all_orders()


async def test_market_orders_and_candles(tmp_path):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        await ex.fetch_tickers(["BTC/USDT"])  # the last ask prices the minimum-cost check
        bought = await ex.create_order(_req("dtmkt1", price=None, amount="0.5"))
        assert bought.type is OrderType.MARKET and bought.filled == D("0.5")
        assert (
            bought.average is not None and bought.average >= srv.exchange.top_of_book("BTC/USDT")[1]
        )
        sold = await ex.create_order(_req("dtmkt2", side=OrderSide.SELL, price=None, amount="0.4"))
        assert sold.filled == D("0.4") and sold.fee_base == 0 and sold.fee > 0
        with pytest.raises(e.InvalidOrder, match="minimum 5"):  # 0.01 BTC at ~100 = 1 USDT
            await ex.create_order(_req("dtmkt3", price=None, amount="0.01"))
        assert srv.stats[ORDER] == 2  # the third was refused before sending
        now = ex.last_ticker("BTC/USDT")
        assert now is not None
        candles = await ex.fetch_ohlcv("BTC/USDT", since_ms=now.ts_ms - 5 * 60_000, limit=6)
        assert candles and all(isinstance(c.close, D) for c in candles)
        assert candles[-1].close == D("100")


async def test_starter_refuses_unknown_symbols_through_ccxt(tmp_path):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        await validate_watchlist(ex, ["BTC/USDT", "ADA/BTC"])
        with pytest.raises(e.BadSymbol) as err:
            await validate_watchlist(ex, ["BTC/USDT", "NOPE/USDT"])
        assert "NOPE/USDT" in str(err.value) and "binance" in str(err.value)
        assert "BTC/USDT" in str(err.value)  # the available markets are listed


async def test_an_order_never_waits_behind_a_batched_ticker_poll(tmp_path):
    # 200 ms per unit of weight: ccxt charges Binance's symbols-list ticker request 16
    # units, so on one shared throttler the next request would wait 3.2 s (6.4 s on the
    # market-data client, which takes half the budget). The order path has its own.
    async with sim_and_adapter(tmp_path, rate_limit_ms=200) as (srv, ex):
        await ex.load_markets()
        await asyncio.sleep(1)  # let both clients' buckets settle
        await ex.fetch_tickers(["BTC/USDT", "ETH/USDT", "ADA/BTC"])
        await ex.fetch_tickers(["BTC/USDT", "ETH/USDT", "ADA/BTC"])  # paid the first's debt
        assert srv.stats[TICKERS] == 2
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        order = await ex.create_order(_req("split-1", price=None))
        assert order.status is OrderStatus.CLOSED
        assert loop.time() - t0 < 2.0  # a shared throttler would hold it >= 3.2 s


async def test_a_placed_order_whose_trades_cannot_be_read_is_unknown_not_failed(tmp_path):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        no_fills_in_create_response(ex)
        real = ex._ex.fetch_order_trades

        async def refused(*_: object, **__: object) -> object:
            raise ccxt.OrderNotFound('binance {"code":-2013,"msg":"Order does not exist."}')

        ex._ex.fetch_order_trades = refused
        with pytest.raises(e.OrderStatusUnknown):  # retried: the retry looks the id up
            await ex.create_order(_req("dtplaced1"))
        assert len(server_orders(srv)) == 1
        ex._ex.fetch_order_trades = real
        found = await ex.fetch_order("BTC/USDT", "dtplaced1")
        assert found.filled == D("1") and found.fee_base > 0


async def test_fees_are_not_taken_from_trades_that_do_not_cover_the_fill(tmp_path):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        srv.exchange.level_liquidity_quote = D("50")  # thin book: several fills
        no_fills_in_create_response(ex)
        real = ex._ex.fetch_order_trades

        async def lagging(*args: object, **kwargs: object) -> object:
            return (await real(*args, **kwargs))[:1]  # the exchange has not listed them all

        ex._ex.fetch_order_trades = lagging
        with pytest.raises(e.OrderStatusUnknown):
            await ex.create_order(_req("dtlag1", amount="1", price="101"))
        with pytest.raises(e.RetryableExchangeError, match="cover"):
            await ex.fetch_order("BTC/USDT", "dtlag1")
        ex._ex.fetch_order_trades = real
        order = await ex.fetch_order("BTC/USDT", "dtlag1")  # nothing wrong was remembered
        fills = srv.exchange.fills("BTC/USDT")
        assert len(fills) > 1 and order.filled == sum(f.amount for f in fills)
        assert order.fee_base == sum(f.fee for f in fills)


async def test_a_fee_in_a_third_currency_without_a_price_counts_zero_not_bad_symbol(
    tmp_path, caplog
):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        no_fills_in_create_response(ex)
        real = ex._ex.fetch_order_trades

        async def paid_in_eth(*args: object, **kwargs: object) -> object:
            trades = await real(*args, **kwargs)
            for t in trades:  # like Binance's BNB discount: the fee in a third currency
                t["fee"], t["fees"] = {"currency": "ETH", "cost": 0.0005}, []
            return trades

        async def delisted(*_: object, **__: object) -> object:
            raise ccxt.BadSymbol('binance {"code":-1121,"msg":"Invalid symbol."}')

        ex._ex.fetch_order_trades = paid_in_eth
        order = await ex.create_order(_req("dteth1"))
        n = len(srv.exchange.fills("BTC/USDT"))
        assert order.fee == D("0.0005") * n * D("2000") and order.fee_base == 0
        ex._ex.fetch_ticker = delisted  # ETH/USDT gone since the markets were loaded
        other = await ex.create_order(_req("dteth2"))
        assert other.filled == D("1") and other.fee == 0
        assert "has no price in USDT" in caplog.text


async def test_cancel_of_an_order_that_filled_meanwhile_returns_the_filled_order(tmp_path):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        await ex.create_order(_req("dtrace1", price="90", tif=TimeInForce.GTC))
        real = ex._ex.cancel_order

        async def fills_first(*args: object, **kwargs: object) -> object:
            settable_feed(srv).set_price("BTC/USDT", D("80"))  # it fills before the cancel arrives
            return await real(*args, **kwargs)

        ex._ex.cancel_order = fills_first
        order = await ex.cancel_order("BTC/USDT", "dtrace1")  # Binance answers -2011
        assert order.status is OrderStatus.CLOSED and order.filled == D("1")
        assert order.fee_base == sum(f.fee for f in srv.exchange.fills("BTC/USDT")) > 0
        assert srv.stats["DELETE /api/v3/order"] == 1


async def test_an_exchange_with_shorter_client_ids_gets_one_digest_per_order(tmp_path):
    # As OKX (32 characters of [A-Za-z0-9]), here even stricter, on the real HTTP path: the
    # exchange is sent a digest of our id, the same one on every call for that order.
    async with sim_and_adapter(tmp_path) as (srv, ex):
        ex._ids = ClientIdRule(
            "newClientOrderId", "origClientOrderId", re.compile(r"[A-Za-z0-9]{1,20}"), 20
        )
        ours = "dt" + "a1" * 16 + "00"  # 36 characters: does not fit
        placed = await ex.create_order(_req(ours, price="90", tif=TimeInForce.GTC))
        [at_server] = srv.exchange.all_orders()
        assert at_server.client_order_id == ex._ids.to_exchange(ours)
        assert len(at_server.client_order_id) == 20
        assert placed.client_order_id == ours  # the port speaks our ids
        assert (await ex.fetch_order("BTC/USDT", ours)).id == placed.id
        with pytest.raises(e.DuplicateClientOrderId):  # a retried create sends the same id
            await ex.create_order(_req(ours, price="90", tif=TimeInForce.GTC))
        assert len(srv.exchange.all_orders()) == 1
