"""Auth, fault injection and the admin API, seen through the real ccxt client."""

from __future__ import annotations

import time
from decimal import Decimal as D
from typing import Any, cast

import ccxt.async_support as ccxt
import pytest

from trader.binance_sim import FaultRule
from trader.binance_sim.control import SimControl

from .conftest import ccxt_client, signed

ORDER = "POST /api/v3/order"


async def buy(client: ccxt.binance, cid: str) -> dict[str, Any]:
    # ccxt is untyped: its orders are plain dicts.
    return cast(
        dict[str, Any],
        await client.create_order(
            "BTC/USDT", "limit", "buy", 0.01, 65100, {"timeInForce": "IOC", "newClientOrderId": cid}
        ),
    )


async def test_wrong_secret_key_and_stale_timestamp_are_rejected(server, client):
    await client.load_markets()
    for bad in (ccxt_client(server.url, secret="wrong"), ccxt_client(server.url, key="nope")):
        bad.markets, bad.markets_by_id = client.markets, client.markets_by_id
        try:
            with pytest.raises(ccxt.AuthenticationError):
                await bad.fetch_balance()
        finally:
            await bad.close()
    client.options["timeDifference"] = 20_000  # our clock 20 s behind: beyond recvWindow
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        await client.fetch_balance()
    client.options["timeDifference"] = 0
    assert "USDT" in (await client.fetch_balance())["total"]


async def test_rate_limit_is_429_with_retry_after(server, client):
    await client.load_markets()
    server.faults.add(FaultRule(endpoint=ORDER, kind="rate_limit", seconds=7))
    with pytest.raises(ccxt.DDoSProtection) as info:  # RateLimitExceeded's parent
        await buy(client, "r1")
    assert "429" in str(info.value) and "-1003" in str(info.value)
    assert client.last_response_headers["Retry-After"] == "7"
    assert server.engine.orders() == []  # nothing was done
    assert (await buy(client, "r1"))["status"] == "closed"  # one shot, then disarmed


async def test_5xx_is_exchange_not_available(server, client):
    await client.load_markets()
    server.faults.add(
        FaultRule(endpoint="GET /api/v3/ticker/24hr", kind="http_5xx", status=502, count=2)
    )
    for _ in range(2):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await client.fetch_tickers(["BTC/USDT"])
    assert "BTC/USDT" in await client.fetch_tickers(["BTC/USDT"])
    assert server.faults.fired == [("GET /api/v3/ticker/24hr", "http_5xx")] * 2


async def test_drop_loses_the_request_before_it_is_done(server, client):
    await client.load_markets()
    server.faults.add(FaultRule(endpoint=ORDER, kind="drop"))
    with pytest.raises(ccxt.NetworkError):
        await buy(client, "d1")
    assert server.engine.orders() == []


async def test_accept_then_drop_keeps_the_order_the_client_never_heard_of(server, client):
    await client.load_markets()
    async with SimControl(server.url) as sim:
        await sim.add_fault({"endpoint": ORDER, "kind": "accept_then_drop"})
        assert (await sim.faults())["armed"][0]["kind"] == "accept_then_drop"
        with pytest.raises(ccxt.NetworkError):
            await buy(client, "lost-1")
        [order] = await sim.orders()
    assert (order["client_order_id"], order["side"], order["status"]) == ("lost-1", "buy", "FILLED")
    assert D(order["filled"]) == D("0.01") and order["accepted_ms"] > 0
    assert order["arrived_us"] // 1000 <= order["accepted_ms"]
    found = await client.fetch_order(None, "BTC/USDT", {"clientOrderId": "lost-1"})
    assert found["status"] == "closed"
    # The order is final, so Binance takes its client id again: a blind retry of the create
    # is a second order. That is why the trader looks the id up first.
    again = await buy(client, "lost-1")
    assert again["id"] != found["id"] and len(await sim.orders()) == 2


async def test_accept_then_hang_times_the_client_out_after_the_order_is_done(server, client):
    await client.load_markets()
    client.timeout = 500  # ms
    server.faults.add(FaultRule(endpoint=ORDER, kind="accept_then_hang", seconds=3))
    started = time.monotonic()
    with pytest.raises(ccxt.RequestTimeout):
        await buy(client, "hang-1")
    assert time.monotonic() - started < 2.5
    assert server.exchange.lookup("hang-1").filled == D("0.01")


async def test_latency_delays_then_serves(server, client):
    await client.load_markets()
    server.faults.add(FaultRule(endpoint="*", kind="latency", seconds=0.3))
    started = time.monotonic()
    assert (await buy(client, "slow-1"))["status"] == "closed"
    assert time.monotonic() - started >= 0.3


async def test_admin_api_stats_prices_events_and_balances(server, client):
    async with SimControl(server.url) as sim:
        await client.fetch_tickers(["BTC/USDT", "ADA/BTC"])
        stats = await sim.stats()
        assert stats == {"GET /api/v3/exchangeInfo": 1, "GET /api/v3/ticker/24hr": 1}
        await sim.reset_stats()
        assert await sim.stats() == {}
        event = await sim.set_price("BTC/USDT", "64000")
        assert (await client.fetch_ticker("BTC/USDT"))["last"] == 64000
        assert await sim.price_events() == [event]
        assert event["ts_ms"] == event["ts_us"] // 1000 and event["symbol"] == "BTC/USDT"
        await sim.set_balances({"ETH": "2"})
        balances = await sim.balances()
        assert balances["ETH"] == {"free": D(2), "locked": D(0), "total": D(2)}
        assert balances["USDT"]["total"] == D(10000)
        with pytest.raises(RuntimeError, match="400"):
            await sim.add_fault({"endpoint": ORDER, "kind": "explode"})
        # "price crossed at the server -> order arrived at the server", on one clock:
        await buy(client, "after-event")
        [order] = await sim.orders()
        assert order["arrived_us"] >= event["ts_us"]
        clock = await sim.clock()
        assert clock["server_ms"] is not None
        assert clock["replay_ms"] is None and abs(clock["server_ms"] - time.time() * 1000) < 5e3
        await sim.add_fault(FaultRule(kind="drop", count=3))
        await sim.clear_faults()
        assert (await sim.faults())["armed"] == []


async def test_auth_errors_are_binance_codes_and_statuses(server):
    params = {"symbol": "BTCUSDT"}
    path = "/api/v3/openOrders"
    assert await signed(server.url, "GET", path, params, key="") == (
        401,
        {"code": -2014, "msg": "API-key format invalid."},
    )
    assert await signed(server.url, "GET", path, params, key="other") == (
        401,
        {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
    )
    assert await signed(server.url, "GET", path, params, secret="other") == (
        400,
        {"code": -1022, "msg": "Signature for this request is not valid."},
    )
    stale = await signed(server.url, "GET", path, params, shift_ms=-6_000)  # > recvWindow
    ahead = await signed(server.url, "GET", path, params, shift_ms=2_000)  # > 1 s ahead
    wide = await signed(server.url, "GET", path, {**params, "recvWindow": "60000"}, shift_ms=-6_000)
    assert (
        stale
        == ahead
        == (400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."})
    )
    assert wide == (200, [])


async def test_a_bad_recv_window_is_named_and_bounded_as_binance_does(server):
    path, params = "/api/v3/openOrders", {"symbol": "BTCUSDT"}
    assert await signed(server.url, "GET", path, {**params, "recvWindow": "soon"}) == (
        400,
        {"code": -1100, "msg": "Illegal characters found in parameter 'recvWindow'."},
    )
    assert await signed(server.url, "GET", path, {**params, "recvWindow": "60001"}) == (
        400,
        {"code": -1131, "msg": "recvWindow must be less than 60000"},
    )
