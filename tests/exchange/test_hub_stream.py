"""The market hub streams first (ccxt.pro against the local server over WebSocket), falls
back to the batched REST poll when the stream drops or stalls, returns to the stream when
it recovers, and never hands a watch a price older than its age limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal as D

from tests.exchange.sim_fixtures import sim_and_adapter
from trader.binance_sim import SimServer
from trader.binance_sim.faults import FaultRule
from trader.contracts import PriceWait
from trader.core.market import Ticker
from trader.hub import MarketHub

TICKERS = "GET /api/v3/ticker/24hr"
BOTH = ("BTC/USDT", "ETH/USDT")


async def until(stream: AsyncIterator[Ticker], ok, *, timeout: float = 15) -> Ticker:  # noqa: ANN001
    async def first() -> Ticker:
        async for t in stream:
            if ok(t):
                return t
        raise AssertionError("stream ended")

    return await asyncio.wait_for(first(), timeout)


async def eventually(check, *, timeout: float = 15) -> None:  # noqa: ANN001
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never held")


def recording(ages: list[tuple[D, float | None]], hub: MarketHub, until_last: D):  # noqa: ANN201
    """A predicate for ``until`` that records every price handed over with its age."""

    def see(t: Ticker) -> bool:
        ages.append((t.last, hub.age_s(t.symbol)))
        return t.last == until_last

    return see


async def on_stream(
    hub: MarketHub, stream: AsyncIterator[Ticker], symbol: str = "BTC/USDT"
) -> None:
    """Until the stream vouches for the symbol, and a REST poll in flight has landed."""
    await until(stream, lambda t: True)
    await eventually(lambda: hub.source(symbol) == "stream")
    await asyncio.sleep(0.3)


def rest_requests(srv: SimServer) -> int:
    return srv.stats[TICKERS] + srv.stats["GET /api/v3/ticker/bookTicker"]


# Where a test asserts no REST poll at all: the stream vouches for 10 s after a frame, not
# 2 s, which a loaded machine's late frames (idle pushes every 1 s) can exceed. A drop is
# told at once, whatever this is.
NO_POLL_STALL_S = 10.0
# A consumer records a price's age when it wakes, after the hub handed it over: a loaded
# machine's wake-up counts too. A stale handover would be seconds old (the stall's, the
# failing REST's waits).
WAKE_SLACK_S = 0.5


async def test_streams_every_symbol_on_one_connection_and_stops_polling(tmp_path):
    async with sim_and_adapter(tmp_path, streams=True) as (srv, ex):
        hub = MarketHub(ex, poll_interval_s=0.05, stream_stall_s=NO_POLL_STALL_S)
        try:
            async with hub.subscription("BTC/USDT") as btc, hub.subscription("ETH/USDT") as eth:
                await until(btc, lambda t: True)
                await until(eth, lambda t: True)
                await eventually(lambda: all(hub.source(s) == "stream" for s in BOTH))
                await asyncio.sleep(0.3)  # a poll already in flight may still land
                polled = rest_requests(srv)
                srv.set_price("ETH/USDT", D("2100"))
                t = await until(eth, lambda t: t.last == D("2100"))
                assert t.bid < D("2100") < t.ask and t.quote_volume > 0  # volume from REST
                # A quiet book: the stream vouches for the price, re-dated on every look.
                ticks = [await until(btc, lambda t: True) for _ in range(5)]
                assert {t.last for t in ticks} == {D("100")}
                assert [t.ts_ms for t in ticks] == sorted({t.ts_ms for t in ticks})
                assert rest_requests(srv) == polled  # no REST while the stream vouches
            [conn] = srv.streams.conns.values()
            assert conn.info()["streams"] == ["btcusdt@bookTicker", "ethusdt@bookTicker"]
            assert conn.info()["path"] == "/ws/0"
        finally:
            await hub.stop()


async def test_a_drop_falls_back_to_rest_and_the_stream_returns(tmp_path):
    async with sim_and_adapter(tmp_path, streams=True) as (srv, ex):
        hub = MarketHub(ex, poll_interval_s=0.05, stream_stall_s=NO_POLL_STALL_S)
        try:
            async with hub.subscription("BTC/USDT") as btc:
                await until(btc, lambda t: True)
                await eventually(lambda: hub.source("BTC/USDT") == "stream")
                srv.streams.disconnect(refuse_s=3.0)
                await eventually(lambda: hub.source("BTC/USDT") == "rest")
                polled = rest_requests(srv)
                srv.set_price("BTC/USDT", D("99"))  # only REST can see it now
                assert (await until(btc, lambda t: t.last == D("99"))).last == D("99")
                assert rest_requests(srv) > polled and not srv.streams.conns
                # Back on the stream (ccxt reconnects, subscribes again), REST stops.
                await eventually(lambda: hub.source("BTC/USDT") == "stream")
                srv.set_price("BTC/USDT", D("98"))
                await until(btc, lambda t: t.last == D("98"))
                await asyncio.sleep(0.3)  # a poll already in flight may still land
                polled = rest_requests(srv)
                for _ in range(5):
                    await until(btc, lambda t: True)
                assert rest_requests(srv) == polled
            assert srv.streams.connects == 2 and hub.stream and hub.stream.errors >= 1
            [conn] = srv.streams.conns.values()
            assert conn.info()["streams"] == ["btcusdt@bookTicker"]
        finally:
            await hub.stop()


async def test_a_new_symbol_joins_the_same_connection(tmp_path):
    async with sim_and_adapter(tmp_path, streams=True) as (srv, ex):
        hub = MarketHub(ex, poll_interval_s=0.05)
        try:
            async with hub.subscription("BTC/USDT") as btc:
                await until(btc, lambda t: True)
                await eventually(lambda: hub.source("BTC/USDT") == "stream")
                async with hub.subscription("ADA/BTC") as ada:
                    await until(ada, lambda t: True)
                    await eventually(lambda: hub.source("ADA/BTC") == "stream")
            # The changed list went onto connection 0 again: one connection, both streams.
            [conn] = srv.streams.conns.values()
            assert conn.info()["streams"] == ["adabtc@bookTicker", "btcusdt@bookTicker"]
            assert srv.streams.connects == 1
        finally:
            await hub.stop()


async def test_a_stale_price_is_never_handed_over_and_the_wait_is_told(tmp_path):
    async with sim_and_adapter(tmp_path, streams=True) as (srv, ex):
        # The stall is noticed only after 30 s: meanwhile the price outlives its 1 s limit.
        hub = MarketHub(ex, poll_interval_s=0.05, max_price_age_s=1.0, stream_stall_s=30.0)
        waits: list[PriceWait] = []
        try:
            async with hub.subscription("BTC/USDT", on_wait=waits.append) as btc:
                await on_stream(hub, btc)
                srv.streams.stall(4.0)
                stalled = asyncio.get_running_loop().time()
                srv.set_price("BTC/USDT", D("95"))
                ages: list[tuple[D, float | None]] = []
                await until(btc, recording(ages, hub, D("95")))
                waited = asyncio.get_running_loop().time() - stalled
            # Every price handed over was younger than the limit (the old one only in the
            # stall's first second), and the new one came with the stall's end, not before.
            assert all(age is not None and age <= 1.0 + WAKE_SLACK_S for _, age in ages), ages
            assert ages[-1][0] == D("95") and waited >= 3.5
            stale = [w for w in waits if w.age_s is not None]  # (before: "no price yet")
            assert stale and all((w.age_s or 0) > 1.0 and w.max_age_s == 1.0 for w in stale)
            assert "stream silent" in stale[-1].detail and stale[-1].source == "stream"
        finally:
            await hub.stop()


async def test_a_stall_falls_back_to_rest_after_the_stall_limit(tmp_path):
    async with sim_and_adapter(tmp_path, streams=True) as (srv, ex):
        hub = MarketHub(ex, poll_interval_s=0.05, max_price_age_s=5.0, stream_stall_s=1.0)
        try:
            async with hub.subscription("BTC/USDT") as btc:
                await on_stream(hub, btc)
                srv.streams.stall(60.0)
                srv.set_price("BTC/USDT", D("96"))
                await until(btc, lambda t: t.last == D("96"))  # by REST, the stream silent
                assert hub.source("BTC/USDT") == "rest" and len(srv.streams.conns) == 1
                srv.streams.faults.clear()
                await eventually(lambda: hub.source("BTC/USDT") == "stream")
        finally:
            await hub.stop()


async def test_stream_down_and_rest_failing_waits_and_says_why(tmp_path):
    async with sim_and_adapter(tmp_path, streams=True) as (srv, ex):
        hub = MarketHub(ex, poll_interval_s=0.05, max_price_age_s=1.0, stream_stall_s=1.0)
        waits: list[PriceWait] = []
        try:
            async with hub.subscription("BTC/USDT", on_wait=waits.append) as btc:
                await until(btc, lambda t: True)
                srv.faults.add(FaultRule(endpoint="*", kind="http_5xx", count=None))
                srv.streams.disconnect(refuse_s=60.0)
                await asyncio.sleep(0.3)  # a REST poll already in flight may still land
                waits.clear()
                ages: list[tuple[D, float | None]] = []
                watching = asyncio.create_task(until(btc, recording(ages, hub, D("94"))))
                await eventually(lambda: len(waits) >= 2)
                srv.set_price("BTC/USDT", D("94"))
                srv.faults.clear()  # REST answers again: the new price, never the old one
                await watching
            assert all(age is not None and age <= 1.0 + WAKE_SLACK_S for _, age in ages), ages
            assert "stream down" in waits[-1].detail and "REST" in waits[-1].detail
        finally:
            await hub.stop()


async def test_an_older_rest_price_never_overwrites_a_newer_streamed_one(tmp_path):
    # A REST ticker that observed the book before the stream moved, answered after it.
    async with sim_and_adapter(tmp_path, streams=True) as (srv, ex):
        hub = MarketHub(ex, poll_interval_s=0.05, stream_stall_s=2.0, volume_refresh_s=0.2)
        try:
            async with hub.subscription("BTC/USDT") as btc:
                await on_stream(hub, btc)
                srv.faults.add(FaultRule(endpoint="*", kind="accept_then_hang", seconds=1.0))
                asked = rest_requests(srv)
                await eventually(lambda: rest_requests(srv) > asked)  # the refresh, at 100
                srv.set_price("BTC/USDT", D("97"))  # the stream pushes it at once
                await until(btc, lambda t: t.last == D("97"))
                seen: list[Ticker] = []
                stop = asyncio.get_running_loop().time() + 2.0  # the old answer lands meanwhile

                def record(t: Ticker) -> bool:
                    seen.append(t)
                    return asyncio.get_running_loop().time() > stop

                await until(btc, record)
                assert len(srv.faults.fired) == 1
                assert {t.last for t in seen} == {D("97")}, [t.last for t in seen]
                assert [t.ts_ms for t in seen] == sorted({t.ts_ms for t in seen})
                # Pricing an order goes through the same rule: the newer streamed price.
                assert (await hub.ticker("BTC/USDT")).last == D("97")
        finally:
            await hub.stop()


async def test_an_empty_book_side_on_the_stream_is_never_a_price(tmp_path):
    # Binance shows an empty side as "b":"0.00000000": its mid would be a fake -50 %.
    async with sim_and_adapter(tmp_path, streams=True) as (srv, ex):
        hub = MarketHub(ex, poll_interval_s=0.05, stream_stall_s=2.0)
        try:
            async with hub.subscription("BTC/USDT") as btc:
                await on_stream(hub, btc)
                sent = srv.streams.frames_sent
                srv.streams.empty_side("BTC/USDT", "bid")
                seen: list[Ticker] = []
                stop = asyncio.get_running_loop().time() + 1.5

                def record(t: Ticker) -> bool:
                    seen.append(t)
                    return asyncio.get_running_loop().time() > stop

                await until(btc, record)
                assert srv.streams.frames_sent > sent  # the empty side went out
                assert all(0 < t.bid <= t.ask and t.last == D("100") for t in seen), seen
                # The stream no longer vouches for the symbol: REST prices it meanwhile.
                assert hub.source("BTC/USDT") == "rest"
                srv.set_price("BTC/USDT", D("99"))
                await until(btc, lambda t: t.last == D("99"))
                srv.streams.faults.clear()
                srv.set_price("BTC/USDT", D("98"))
                await until(btc, lambda t: t.last == D("98"))
                await eventually(lambda: hub.source("BTC/USDT") == "stream")
        finally:
            await hub.stop()


async def test_a_restarted_hub_streams_again(tmp_path):
    # Both mode stops the hub with the legacy engine and starts it again.
    async with sim_and_adapter(tmp_path, streams=True) as (srv, ex):
        hub = MarketHub(ex, poll_interval_s=0.05, stream_stall_s=1.0)
        try:
            async with hub.subscription("BTC/USDT") as btc:
                await on_stream(hub, btc)
                await asyncio.wait_for(hub.stop(), 10)
                assert hub.source("BTC/USDT") == "rest"  # nothing streams while stopped
                await hub.start()
                srv.set_price("BTC/USDT", D("97"))
                await until(btc, lambda t: t.last == D("97"))
                await eventually(lambda: hub.source("BTC/USDT") == "stream")
        finally:
            await hub.stop()


async def test_a_new_symbol_is_subscribed_without_unvouching_the_others(tmp_path):
    async with sim_and_adapter(tmp_path, streams=True) as (srv, ex):
        hub = MarketHub(ex, poll_interval_s=0.05, stream_stall_s=2.0)
        sources: list[str] = []

        async def sample() -> None:
            while True:
                sources.append(hub.source("BTC/USDT"))
                await asyncio.sleep(0.01)

        try:
            async with hub.subscription("BTC/USDT") as btc:
                await on_stream(hub, btc)
                sampling = asyncio.create_task(sample())
                async with hub.subscription("ADA/BTC") as ada:
                    await on_stream(hub, ada, "ADA/BTC")
                sampling.cancel()
            assert set(sources) == {"stream"}  # BTC never fell back to REST meanwhile
            [conn] = srv.streams.conns.values()
            assert [m for m, _ in conn.methods] == ["SUBSCRIBE", "SUBSCRIBE"]  # no UNSUBSCRIBE
        finally:
            await hub.stop()


async def test_a_silent_connection_is_redialled_when_rest_sees_the_book_move(tmp_path):
    # A half-open socket: open, no error, no frames. REST takes over, then the stream
    # is dialled anew (after SILENT_FACTOR x stall_s and the chunk's first backoff).
    async with sim_and_adapter(tmp_path, streams=True) as (srv, ex):
        hub = MarketHub(ex, poll_interval_s=0.05, stream_stall_s=0.5)
        try:
            async with hub.subscription("BTC/USDT") as btc:
                await on_stream(hub, btc)
                assert srv.streams.silence() == 1
                srv.set_price("BTC/USDT", D("97"))
                await until(btc, lambda t: t.last == D("97"))  # by REST
                await eventually(lambda: hub.source("BTC/USDT") == "stream", timeout=20)
                assert srv.streams.connects == 2 and hub.stream and hub.stream.redials == 1
                srv.set_price("BTC/USDT", D("96"))
                await until(btc, lambda t: t.last == D("96"))
        finally:
            await hub.stop()


async def test_a_quiet_book_falls_to_rest_and_is_never_redialled(tmp_path):
    # As on Binance, no frame while the book stands still (the sim's idle push off): after
    # stall_s REST prices the symbol; REST agrees with the last frame, so no redial.
    quiet = {"stream_idle_push_s": 3600.0}
    async with sim_and_adapter(tmp_path, streams=True, sim=quiet) as (srv, ex):
        hub = MarketHub(ex, poll_interval_s=0.05, stream_stall_s=0.5)
        try:
            async with hub.subscription("BTC/USDT") as btc:
                await until(btc, lambda t: True)
                await eventually(lambda: hub.source("BTC/USDT") == "stream")
                await eventually(lambda: hub.source("BTC/USDT") == "rest")
                await asyncio.sleep(6.0)  # past 3 x stall_s and the first redial backoff
                assert hub.stream and hub.stream.redials == 0 and srv.streams.connects == 1
                srv.set_price("BTC/USDT", D("97"))  # a frame: the stream vouches again
                await until(btc, lambda t: t.last == D("97"))
                await eventually(lambda: hub.source("BTC/USDT") == "stream")
                assert hub.stream.redials == 0
        finally:
            await hub.stop()
