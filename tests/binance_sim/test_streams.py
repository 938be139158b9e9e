"""The simulator's WebSocket market streams, through the real ccxt.pro client and by hand."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import aiohttp
import ccxt.pro as ccxt_pro
import pytest

from trader.binance_sim import SimServer
from trader.binance_sim.control import SimControl

from .conftest import ccxt_pro_client

BOTH = ["BTC/USDT", "ADA/BTC"]


@pytest.fixture
async def pro(server: SimServer) -> AsyncIterator[ccxt_pro.binance]:
    ex = ccxt_pro_client(server.url)
    yield ex
    await ex.close()


async def next_book(pro: ccxt_pro.binance, symbols: list[str], want: str) -> dict[str, Any]:
    """The next bids/asks update of ``want``. A watch returns the frame that woke it;
    frames arriving before the next call land only in ccxt's cache (``bidsasks``)."""
    seen = pro.bidsasks.get(want, {}).get("info", {}).get("u", 0)
    for _ in range(20):
        await asyncio.wait_for(pro.watch_bids_asks(symbols), timeout=10)
        got = pro.bidsasks.get(want)
        if got is not None and got["info"]["u"] > seen:
            return dict(got)
    raise AssertionError(f"no update of {want}")


async def test_book_tickers_of_several_symbols_follow_the_price(server, pro):
    btc, ada = await next_book(pro, BOTH, "BTC/USDT"), await next_book(pro, BOTH, "ADA/BTC")
    # Binance's spot bookTicker frame: no event type or time, prices as strings.
    assert set(btc["info"]) == {"u", "s", "b", "B", "a", "A"}
    assert (btc["info"]["s"], ada["info"]["s"]) == ("BTCUSDT", "ADABTC")
    touch = server.market_api.snapshot("BTC/USDT")
    assert (D(btc["info"]["b"]), D(btc["info"]["a"])) == (touch.bid[0], touch.ask[0])
    server.set_price("BTC/USDT", D("66000"))
    moved = await next_book(pro, BOTH, "BTC/USDT")
    assert D(moved["info"]["b"]) < D("66000") < D(moved["info"]["a"])
    assert moved["info"]["u"] > btc["info"]["u"]
    # One connection carries both symbols' streams.
    [conn] = server.streams.conns.values()
    assert conn.info()["streams"] == ["adabtc@bookTicker", "btcusdt@bookTicker"]


async def test_ticker_streams_single_and_all_market(server, pro):
    one = await asyncio.wait_for(pro.watch_tickers(["BTC/USDT"], {"name": "ticker"}), 10)
    assert one["BTC/USDT"]["last"] == 65000 and one["BTC/USDT"]["info"]["e"] == "24hrTicker"
    assert one["BTC/USDT"]["quoteVolume"] > 0
    mini = await asyncio.wait_for(pro.watch_tickers(["ADA/BTC"]), 10)  # ccxt: miniTicker
    assert mini["ADA/BTC"]["info"]["e"] == "24hrMiniTicker"
    server.set_price("ADA/BTC", D("0.00005400"))
    every: dict[str, Any] = {}
    while every.get("ADA/BTC", {}).get("last") != 0.000054:
        every.update(await asyncio.wait_for(pro.watch_tickers(None, {"name": "ticker"}), 10))
    streams = {n for c in server.streams.conns.values() for n in c.info()["streams"]}
    assert {"btcusdt@ticker", "adabtc@miniTicker", "!ticker@arr"} <= streams


async def test_subscribe_list_unsubscribe_and_combined_frames(server):
    url = server.url.replace("http://", "ws://")
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(f"{url}/stream?streams=btcusdt@bookTicker") as sock,
    ):
        first = await sock.receive_json(timeout=10)
        assert first["stream"] == "btcusdt@bookTicker" and first["data"]["s"] == "BTCUSDT"
        await sock.send_str(
            json.dumps({"method": "SUBSCRIBE", "params": ["adabtc@ticker"], "id": 7})
        )
        await sock.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 8}))
        await sock.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["nope@x"], "id": 9}))
        await sock.send_str(
            json.dumps({"method": "UNSUBSCRIBE", "params": ["adabtc@ticker"], "id": 10})
        )
        await sock.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 11}))
        replies: dict[int, Any] = {}
        frames: list[dict[str, Any]] = []
        while 11 not in replies:
            msg = await sock.receive_json(timeout=10)
            if "id" in msg:
                replies[msg["id"]] = msg
            else:
                frames.append(msg)
    assert replies[7] == {"result": None, "id": 7}
    assert replies[8]["result"] == ["adabtc@ticker", "btcusdt@bookTicker"]
    assert replies[9]["error"]["code"] == 2 and "nope@x" in replies[9]["error"]["msg"]
    assert replies[11]["result"] == ["btcusdt@bookTicker"]
    assert {"stream": "adabtc@ticker"}.items() <= frames[0].items()  # pushed on subscribe


async def test_raw_endpoint_takes_streams_from_the_path(server):
    url = server.url.replace("http://", "ws://")
    async with aiohttp.ClientSession() as s, s.ws_connect(f"{url}/ws/btcusdt@bookTicker") as sock:
        frame = await sock.receive_json(timeout=10)
    assert frame["s"] == "BTCUSDT" and "stream" not in frame


async def test_a_drop_makes_ccxt_reconnect_and_resubscribe(server, pro):
    await next_book(pro, BOTH, "BTC/USDT")
    async with SimControl(server.url) as sim:
        assert await sim.drop_streams(refuse_seconds=1.5) == 1
        with pytest.raises(ccxt_pro.NetworkError):  # the watch in flight learns of it
            for _ in range(5):
                await asyncio.wait_for(pro.watch_bids_asks(BOTH), 10)
        # Refused while the outage lasts, then ccxt's next watch connects and resubscribes.
        for _ in range(100):
            try:
                await asyncio.wait_for(pro.watch_bids_asks(BOTH), 10)
                break
            except ccxt_pro.NetworkError:
                await asyncio.sleep(0.1)
        info = await sim.streams()
    assert info["connects"] == 2
    [conn] = info["connections"]
    assert conn["streams"] == ["adabtc@bookTicker", "btcusdt@bookTicker"]
    server.set_price("ADA/BTC", D("0.00005500"))
    assert D((await next_book(pro, BOTH, "ADA/BTC"))["info"]["b"]) < D("0.000055")


async def test_a_drop_of_one_symbol_leaves_other_connections(server, pro):
    await next_book(pro, ["BTC/USDT"], "BTC/USDT")
    await asyncio.wait_for(pro.watch_tickers(["ADA/BTC"], {"name": "ticker"}), 10)
    async with SimControl(server.url) as sim:
        assert await sim.drop_streams("ADA/BTC") == 1
        left = (await sim.streams())["connections"]
    assert [c["streams"] for c in left] == [["btcusdt@bookTicker"]]


async def test_a_stall_sends_nothing_until_it_ends(server, pro):
    await next_book(pro, ["BTC/USDT"], "BTC/USDT")
    async with SimControl(server.url) as sim:
        await sim.stall_streams(5.0)  # well past the 1 s wait below, however slow this runs
        server.set_price("BTC/USDT", D("64000"))
        sent = server.streams.frames_sent
        with pytest.raises(TimeoutError):  # the connection stays open, silent
            await asyncio.wait_for(pro.watch_bids_asks(["BTC/USDT"]), 1.0)
        assert server.streams.frames_sent == sent and len(server.streams.conns) == 1
        after = await next_book(pro, ["BTC/USDT"], "BTC/USDT")  # the idle push after it
    assert D(after["info"]["a"]) > D("64000") > D(after["info"]["b"])


async def test_delayed_frames_arrive_late_and_in_order(server):
    url = server.url.replace("http://", "ws://")
    async with (
        SimControl(server.url) as sim,
        aiohttp.ClientSession() as s,
        s.ws_connect(f"{url}/ws/btcusdt@bookTicker") as sock,
    ):
        await sock.receive_json(timeout=10)
        await sim.delay_streams(800)
        server.set_price("BTC/USDT", D("64000"))
        server.set_price("BTC/USDT", D("63000"))
        with pytest.raises(TimeoutError):  # not before its delay
            await sock.receive_json(timeout=0.4)
        first, second = await sock.receive_json(timeout=10), await sock.receive_json(timeout=10)
        await sim.clear_stream_faults()
        assert (await sim.streams())["delay_ms"] == {}
    assert D(first["a"]) > D("64000") > D(second["a"]) > D("63000")


async def test_the_frame_and_request_logs_say_when_and_what(server, pro, client):
    """What bench/exchange_latency.py's per-hop breakdown reads: a frame of the symbol
    written after the price was set, and a lookup by client order id with its id."""
    await next_book(pro, ["BTC/USDT"], "BTC/USDT")
    event = server.set_price("BTC/USDT", D("64000"))
    await next_book(pro, ["BTC/USDT"], "BTC/USDT")
    assert any(s == "BTC/USDT" and t >= event["ts_us"] for t, s in server.streams.sent_log)
    with pytest.raises(ccxt_pro.OrderNotFound):
        await client.fetch_order(None, "BTC/USDT", {"origClientOrderId": "lookup-1"})
    arrived, endpoint, client_id = server.requests[-1]
    assert (endpoint, client_id) == ("GET /api/v3/order", "lookup-1")
    assert arrived >= event["ts_us"]
