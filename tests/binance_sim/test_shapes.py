"""Every response carries at least the fields of Binance's documented examples
(``shared/data/binance_http/*.json``), with the same JSON types."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.conftest import SHARED_DATA

from .conftest import signed

HTTP = SHARED_DATA / "binance_http"
pytestmark = pytest.mark.skipif(not HTTP.is_dir(), reason="shared data not present")


def sample(name: str) -> Any:
    return json.loads((HTTP / f"{name}.json").read_text())


def assert_shape(ours: Any, theirs: Any, where: str) -> None:
    """Same keys (at least) and the same JSON type per key, recursively."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), where
        missing = set(theirs) - set(ours)
        assert not missing, f"{where}: missing {sorted(missing)}"
        for key, value in theirs.items():
            assert_shape(ours[key], value, f"{where}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list), where
        if theirs and ours:
            assert_shape(ours[0], theirs[0], f"{where}[0]")
    elif isinstance(theirs, bool):
        assert isinstance(ours, bool), f"{where}: {ours!r} is not a boolean"
    elif theirs is None:
        assert ours is None or isinstance(ours, bool), where
    else:
        assert type(ours) is type(theirs), f"{where}: {ours!r} vs {theirs!r}"


async def public(url: str, path: str, **params: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(url + path, params=params) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_public_shapes(server):
    u = server.url
    assert_shape(await public(u, "/api/v3/ping"), sample("ping_response"), "ping")
    assert_shape(await public(u, "/api/v3/time"), sample("server_time_response"), "time")
    info = await public(u, "/api/v3/exchangeInfo")
    theirs = sample("exchange_info_response")
    theirs["symbols"][0]["filters"] = []  # their example has none; ours are checked by ccxt
    assert_shape(info, theirs, "exchangeInfo")
    assert_shape(
        await public(u, "/api/v3/ticker/24hr", symbol="BTCUSDT"),
        sample("ticker_24hr_response"),
        "ticker/24hr",
    )
    assert_shape(
        await public(u, "/api/v3/ticker/bookTicker", symbol="BTCUSDT"),
        sample("book_ticker_response"),
        "bookTicker",
    )
    assert_shape(
        await public(u, "/api/v3/ticker/price", symbol="BTCUSDT"),
        sample("ticker_price_response"),
        "ticker/price",
    )
    assert_shape(
        await public(u, "/api/v3/avgPrice", symbol="BTCUSDT"),
        sample("avg_price_response"),
        "avgPrice",
    )
    assert_shape(
        await public(u, "/api/v3/depth", symbol="BTCUSDT"), sample("depth_response"), "depth"
    )
    klines = await public(u, "/api/v3/klines", symbol="BTCUSDT", interval="5m", limit="2")
    assert len(klines) == 2 and klines[1][0] - klines[0][0] == 300_000
    assert_shape(klines, sample("klines_response"), "klines")
    assert len(klines[0]) == len(sample("klines_response")[0])


async def test_batch_and_all_symbol_forms(server):
    u = server.url
    every = await public(u, "/api/v3/ticker/24hr")
    assert [t["symbol"] for t in every] == ["ADABTC", "BTCUSDT"]
    two = await public(u, "/api/v3/ticker/bookTicker", symbols='["BTCUSDT","ADABTC"]')
    assert [t["symbol"] for t in two] == ["BTCUSDT", "ADABTC"]
    prices = await public(u, "/api/v3/ticker/price")
    assert {p["symbol"]: p["price"] for p in prices} == {
        "ADABTC": "0.00005300",
        "BTCUSDT": "65000.00000000",
    }
    one = await public(u, "/api/v3/exchangeInfo", symbol="ADABTC")
    [ada] = one["symbols"]
    filters = {f["filterType"]: f for f in ada["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.00000001"
    assert filters["LOT_SIZE"]["stepSize"] == "1.00000000"
    assert filters["NOTIONAL"]["minNotional"] == "0.00010000"


async def test_signed_shapes(server):
    u = server.url
    new = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01"}
    status, full = await signed(
        u,
        "POST",
        "/api/v3/order",
        {
            **new,
            "price": "65100",
            "timeInForce": "IOC",
            "newClientOrderId": "s1",
            "newOrderRespType": "FULL",
        },
    )
    assert status == 200
    assert_shape(full, sample("new_order_full_response"), "order FULL")
    status, ack = await signed(
        u,
        "POST",
        "/api/v3/order",
        {
            **new,
            "price": "60000",
            "timeInForce": "GTC",
            "newClientOrderId": "s2",
            "newOrderRespType": "ACK",
        },
    )
    assert status == 200 and set(ack) == {
        "symbol",
        "orderId",
        "orderListId",
        "clientOrderId",
        "transactTime",
    }
    _, got = await signed(
        u, "GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "s2"}
    )
    assert_shape(got, sample("order_response"), "order")
    _, opened = await signed(u, "GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
    assert_shape(opened, sample("open_orders_response"), "openOrders")
    _, everything = await signed(u, "GET", "/api/v3/allOrders", {"symbol": "BTCUSDT"})
    assert_shape(everything, sample("all_orders_response"), "allOrders")
    assert [o["clientOrderId"] for o in everything] == ["s1", "s2"]
    _, trades = await signed(u, "GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"})
    assert_shape(trades, sample("account_trades_response"), "myTrades")
    _, account = await signed(u, "GET", "/api/v3/account", {})
    assert_shape(account, sample("account_response"), "account")
    status, cancelled = await signed(
        u, "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "s2"}
    )
    assert status == 200 and cancelled["status"] == "CANCELED"
    assert_shape(cancelled, sample("cancel_order_response"), "cancel")
