"""The server on the real 2018 CSVs (BTC-quoted, 5e-05 prices), through ccxt."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from tests.conftest import SHARED_DATA
from trader.binance_sim import SimConfig, SimServer
from trader.binance_sim.control import SimControl
from trader.exchange.replay import ReplayFeed

from .conftest import ccxt_client

pytestmark = pytest.mark.skipif(
    not (SHARED_DATA / "ohlcv").is_dir(), reason="shared data not present"
)


async def test_replayed_markets_prices_klines_and_a_trade(tmp_path):
    origin = int(time.time() * 1000)
    feed = ReplayFeed.from_dir(
        SHARED_DATA / "ohlcv",
        symbols=["ADA/BTC", "ETH/BTC"],
        speed=300,
        start=datetime(2018, 1, 16, tzinfo=UTC),
        origin_ms=origin,
    )
    config = SimConfig(feed=feed, data_dir=tmp_path, balances={"BTC": D("0.1")})
    async with SimServer(config) as srv:
        client = ccxt_client(srv.url)
        try:
            markets = await client.load_markets()
            assert set(markets) == {"ADA/BTC", "ETH/BTC"}
            assert markets["ADA/BTC"]["precision"]["price"] == 1e-08
            before = feed.mid("ADA/BTC", int(time.time() * 1000))
            ticker = await client.fetch_ticker("ADA/BTC")
            after = feed.mid("ADA/BTC", int(time.time() * 1000))
            lo, hi = sorted((before, after))
            assert lo <= D(ticker["info"]["lastPrice"]) <= hi  # 300x: the price moves
            assert D("0.00001") < D(ticker["info"]["lastPrice"]) < D("0.0001")
            assert ticker["bid"] < ticker["ask"]
            assert D(ticker["info"]["quoteVolume"]) > 0  # the data's 24 h BTC volume

            # Klines on the server's real-time axis: the last hour of real minutes, each
            # five hours of data (before the chosen start: earlier data, or the first open).
            now = int(time.time() * 1000)
            candles = await client.fetch_ohlcv("ADA/BTC", "1m", since=now - 3_600_000, limit=60)
            assert len(candles) >= 59 and candles[-1][0] <= now < candles[-1][0] + 60_000
            assert all(b[0] - a[0] == 60_000 for a, b in zip(candles, candles[1:], strict=False))
            expected = feed.candles(
                "ADA/BTC", since_ms=candles[0][0], until_ms=candles[-2][0] + 59_999, limit=1000
            )
            assert [c[0] for c in candles[:-1]] == [c.ts_ms for c in expected]
            assert [D(str(c[3])) for c in candles[:-1]] == [c.low for c in expected]

            async with SimControl(srv.url) as sim:
                clock = await sim.clock()
            assert clock["server_ms"] is not None
            assert clock["replay_ms"] == feed.replay_ms(clock["server_ms"])
            assert clock["replay_ms"] > int(datetime(2018, 1, 16, tzinfo=UTC).timestamp() * 1e3)
            price = D(ticker["info"]["askPrice"]) * 2  # a marketable limit, tick-aligned
            order = await client.create_order(
                "ADA/BTC",
                "limit",
                "buy",
                100,
                float(price),
                {"timeInForce": "IOC", "newClientOrderId": "ada-1"},
            )
            assert order["status"] == "closed" and order["filled"] == 100
            assert order["fee"] == {"currency": "ADA", "cost": 0.1}
            balance = await client.fetch_balance()
            assert balance["ADA"]["total"] == 99.9
            assert D(balance["info"]["balances"][1]["free"]) < D("0.1")  # BTC spent
        finally:
            await client.close()
