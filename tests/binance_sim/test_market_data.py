"""Market data through the real ccxt client: markets, tickers, book, candles."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from trader.binance_sim import SimConfig, SimServer
from trader.exchange.feed import StaticFeed
from trader.exchange.generated import market_for

from .conftest import ccxt_client


async def test_load_markets_gives_binance_precision_and_limits(server, client):
    markets = await client.load_markets()
    assert set(markets) == {"BTC/USDT", "ADA/BTC"}
    ada = markets["ADA/BTC"]
    assert (ada["id"], ada["base"], ada["quote"], ada["spot"], ada["active"]) == (
        "ADABTC",
        "ADA",
        "BTC",
        True,
        True,
    )
    assert ada["precision"]["price"] == 1e-08 and ada["precision"]["amount"] == 1
    assert ada["limits"]["cost"]["min"] == 0.0001 and ada["limits"]["amount"]["min"] == 1
    btc = markets["BTC/USDT"]
    assert btc["precision"]["price"] == 0.01 and btc["precision"]["amount"] == 1e-05
    assert btc["limits"]["cost"]["min"] == 5
    assert client.price_to_precision("ADA/BTC", 0.0000530049) == "0.000053"
    assert server.stats["GET /api/v3/exchangeInfo"] == 1


async def test_fetch_tickers_for_ten_symbols_is_one_request(tmp_path):
    prices = {f"C{i}/BTC": D("0.0000530") * (i + 1) for i in range(10)}
    feed = StaticFeed({s: market_for(s, p) for s, p in prices.items()})
    for s, p in prices.items():
        feed.set_price(s, p)
    async with SimServer(SimConfig(feed=feed, data_dir=tmp_path)) as srv:
        client = ccxt_client(srv.url)
        try:
            await client.load_markets()
            srv.stats.clear()
            tickers = await client.fetch_tickers(list(prices))
        finally:
            await client.close()
    assert dict(srv.stats) == {"GET /api/v3/ticker/24hr": 1}
    assert set(tickers) == set(prices)
    t = tickers["C0/BTC"]
    assert t["bid"] < 0.000053 < t["ask"] and t["last"] == 0.000053
    assert t["info"]["lastPrice"] == "0.00005300"  # Decimal strings, no exponent


async def test_single_ticker_book_and_price_follow_the_static_price(server, client):
    server.set_price("BTC/USDT", D("70000"))
    ticker = await client.fetch_ticker("BTC/USDT")
    assert ticker["last"] == 70000 and ticker["bid"] == 69965 and ticker["ask"] == 70035
    book = await client.fetch_order_book("BTC/USDT")
    assert book["bids"][0][0] == 69965 and book["asks"][0][0] == 70035
    assert len(book["bids"]) == 5 and book["asks"][1][0] > book["asks"][0][0]
    assert server.price_events[-1]["price"] == "70000"


async def test_klines_are_one_minute_candles_up_to_now(server, client):
    candles = await client.fetch_ohlcv("ADA/BTC", "1m", limit=3)
    assert len(candles) == 3
    assert [c[0] % 60_000 for c in candles] == [0, 0, 0]
    assert candles[1][0] - candles[0][0] == 60_000
    assert all(c[4] == 0.000053 for c in candles)


async def test_unknown_symbol_is_binance_invalid_symbol(server):
    import aiohttp

    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{server.url}/api/v3/ticker/24hr", params={"symbol": "NOPEBTC"}) as resp,
    ):
        assert resp.status == 400
        assert await resp.json() == {"code": -1121, "msg": "Invalid symbol."}


async def test_5m_klines_aggregate_the_1m_candles(tmp_path):
    import time

    from trader.exchange.replay import ReplayFeed

    rows = ["date,open,high,low,close,volume"]
    for i in range(400):  # a zigzag, so every minute has its own range
        p = D("0.00005000") + D("0.00000010") * (i % 7)
        rows.append(
            f"2018-01-10 {i // 60:02d}:{i % 60:02d}:00+00:00,{p},{p + D('3e-8')},"
            f"{p - D('2e-8')},{p + D('1e-8')},{i}"
        )
    (tmp_path / "ADA_BTC-1m.csv").write_text("\n".join(rows) + "\n")
    # One hour into the data now: the last 20 minutes are all inside it.
    feed = ReplayFeed.from_dir(tmp_path, speed=1, origin_ms=int(time.time() * 1000) - 3_600_000)
    async with SimServer(SimConfig(feed=feed, data_dir=tmp_path / "d")) as srv:
        client = ccxt_client(srv.url)
        try:
            fives = await client.fetch_ohlcv("ADA/BTC", "5m", limit=4)
            ones = await client.fetch_ohlcv("ADA/BTC", "1m", since=fives[0][0], limit=15)
        finally:
            await client.close()
    assert [f[0] % 300_000 for f in fives] == [0] * 4
    for k, five in enumerate(fives[:3]):  # closed 5-minute klines
        part = ones[5 * k : 5 * k + 5]
        assert part[0][0] == five[0]
        assert five[1:5] == [
            part[0][1],
            max(c[2] for c in part),
            min(c[3] for c in part),
            part[-1][4],
        ]
        assert five[5] == pytest.approx(sum(c[5] for c in part))
    assert len({f[2] for f in fives}) > 1 or len({f[3] for f in fives}) > 1
