"""SymbolTrader on streamed prices: the real ccxt.pro client against the local Binance
server over WebSocket, the real hub, a real Temporal dev server.

A full trade on the stream; a stream drop mid-position falls back to REST and the exit
still fires; a stall longer than the price age limit makes no decision (not even a
checkpoint) on the stale price, and the watch says why in its heartbeat; after a
reconnect the stream is subscribed again and the entry fires from it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from temporalio.client import Client

from tests.exchange.sim_fixtures import settable_feed, sim_and_adapter
from tests.workflows.harness import Bench, TraderHandle, bench
from trader.binance_sim import SimServer
from trader.core.phases import Phase
from trader.hub import MarketHub
from trader.observe.status_table import status_rows, traders_query
from trader.observe.status_waits import price_wait_of, with_price_waits

USDT_ONLY = {"USDT": D("10000")}
NO_REFRESH = 3600.0  # no REST refresh of 24 h volumes during a test: every REST cycle counts
# Where a test asserts no REST poll at all: the stream vouches for 10 s after a frame, not the
# default 2 s, which a loaded machine's late frames (idle pushes every 1 s) can exceed.
NO_POLL = {"stream_stall_s": 10.0}


@contextlib.asynccontextmanager
async def streaming(
    client: Client, tmp_path: Path, **hub: float
) -> AsyncIterator[tuple[SimServer, Bench, MarketHub]]:
    async with (
        sim_and_adapter(tmp_path, balances=USDT_ONLY, streams=True) as (srv, ex),
        bench(
            client,
            tmp_path,
            exchange=ex,
            feed=settable_feed(srv),
            hub_options={"volume_refresh_s": NO_REFRESH, **hub},
        ) as b,
    ):
        assert b.hub is not None and b.hub.stream is not None
        yield srv, b, b.hub


async def on_stream(hub: MarketHub, symbol: str = "BTC/USDT") -> None:
    """Until the stream vouches for the symbol, and a REST poll in flight has landed."""
    for _ in range(400):
        if hub.source(symbol) == "stream":
            await asyncio.sleep(0.3)
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{symbol} never came onto the stream")


async def watch_exits_completed(h: TraderHandle) -> int:
    history = await h.fetch_history()
    watches = {
        ev.event_id
        for ev in history.events
        if ev.HasField("activity_task_scheduled_event_attributes")
        and ev.activity_task_scheduled_event_attributes.activity_type.name == "watch_exit"
    }
    return sum(
        1
        for ev in history.events
        if ev.HasField("activity_task_completed_event_attributes")
        and ev.activity_task_completed_event_attributes.scheduled_event_id in watches
    )


async def pending_heartbeat(client: Client, h: TraderHandle) -> list[Any]:
    """The heartbeat details of the workflow's pending activity (the watch), decoded."""
    desc = await h.describe()
    [pending] = desc.raw_description.pending_activities
    return await client.data_converter.decode(pending.heartbeat_details.payloads)


async def test_a_full_trade_on_the_stream(dev_env, tmp_path):
    async with streaming(dev_env.client, tmp_path, **NO_POLL) as (srv, b, hub):
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        await on_stream(hub)
        cycles = hub.cycles
        srv.set_price("BTC/USDT", D("97.90"))  # 2.1 % below the anchor: buy
        await b.wait_phase(h, Phase.POSITION, timeout=30)
        srv.set_price("BTC/USDT", D("101.50"))  # above take-profit: sell
        s = await b.wait_phase(h, Phase.COOLDOWN, timeout=30)
        # Both decisions came from the stream: no batched REST poll since it vouched.
        assert hub.cycles == cycles and hub.source("BTC/USDT") == "stream"
        [trade] = await b.ledger.trades()
        assert trade.exit_reason == "take_profit" and trade.sold_amount > 0
        assert s.totals.trades_closed == 1
        assert [c.info()["streams"] for c in srv.streams.conns.values()] == [["btcusdt@bookTicker"]]


async def test_a_stream_drop_mid_position_falls_back_to_rest_and_the_exit_fires(dev_env, tmp_path):
    async with streaming(dev_env.client, tmp_path) as (srv, b, hub):
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        await on_stream(hub)
        srv.set_price("BTC/USDT", D("97.90"))
        await b.wait_phase(h, Phase.POSITION, timeout=30)
        srv.streams.disconnect(refuse_s=120.0)  # an outage: no stream until the test ends
        for _ in range(200):
            if hub.source("BTC/USDT") == "rest":
                break
            await asyncio.sleep(0.05)
        cycles = hub.cycles
        srv.set_price("BTC/USDT", D("101.50"))
        await b.wait_phase(h, Phase.COOLDOWN, timeout=30)
        assert not srv.streams.conns and hub.cycles > cycles  # the exit came over REST
        [trade] = await b.ledger.trades()
        assert trade.exit_reason == "take_profit"


async def test_a_stall_longer_than_the_age_limit_makes_no_decision_on_the_stale_price(
    dev_env, tmp_path
):
    # The stall is noticed only after 60 s (no REST fallback meanwhile), the price may be
    # 1 s old, and the exit watch returns to its workflow every second while prices come.
    async with streaming(dev_env.client, tmp_path, max_price_age_s=1.0, stream_stall_s=60.0) as (
        srv,
        b,
        hub,
    ):
        h = await b.start(watch_checkpoint_seconds=1)
        await b.wait_phase(h, Phase.IDLE)
        await on_stream(hub)
        srv.set_price("BTC/USDT", D("97.90"))
        await b.wait_phase(h, Phase.POSITION, timeout=30)
        await on_stream(hub)
        # Longer than the checks below can take on a loaded machine (four server calls and
        # a heartbeat's throttle), shorter than the hub's 60 s to notice it; ended by hand
        # once they are done.
        stall_s = 40.0
        srv.streams.stall(stall_s)
        stalled = time.time()
        await asyncio.sleep(3.5)  # past the age limit (and a checkpoint on its edge)
        before = await watch_exits_completed(h)
        srv.set_price("BTC/USDT", D("101.50"))  # take-profit, unseen until the stall ends
        await asyncio.sleep(max(0.0, stalled + 6.0 - time.time()))
        # The SDK sends a heartbeat at most every 0.8 x its timeout (4 s here): by now the
        # waiting one has reached the server, unless a loaded machine delayed it.
        wait = None
        while time.time() < stalled + stall_s - 10:
            details = await pending_heartbeat(dev_env.client, h)
            wait = price_wait_of(details)
            if wait is not None and wait.age_s is not None and wait.age_s > 1.0:
                break
            await asyncio.sleep(0.5)
        assert wait is not None and wait.max_age_s == 1.0 and wait.source == "stream"
        assert wait.age_s is not None and wait.age_s > 1.0
        assert isinstance(details[-1], dict) and "trailing" in details[-1]  # state stays last
        # ... and the status table shows it on the symbol's row.
        rows = await status_rows(dev_env.client, traders_query(b.task_queue))
        [row] = await with_price_waits(dev_env.client, [r for r in rows if r.workflow_id == h.id])
        assert row.waiting is not None and row.waiting.startswith("waiting: price")
        assert "stream silent" in row.waiting
        # No checkpoint and no exit while the price was stale.
        assert await watch_exits_completed(h) == before
        assert time.time() < stalled + stall_s  # all of it inside the stall
        srv.streams.faults.clear()  # the stall ends: the next frame has the fresh price
        s = await b.wait_phase(h, Phase.COOLDOWN, timeout=30)
        [trade] = await b.ledger.trades()
        assert trade.exit_reason == "take_profit"  # decided on the fresh price
        assert s.trade.amount == 0


async def test_after_a_reconnect_the_stream_is_subscribed_again_and_the_entry_fires(
    dev_env, tmp_path
):
    async with streaming(dev_env.client, tmp_path, **NO_POLL) as (srv, b, hub):
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        await on_stream(hub)
        assert srv.streams.disconnect() == 1  # ccxt reconnects at once
        for _ in range(200):
            if srv.streams.connects == 2 and srv.streams.conns:
                break
            await asyncio.sleep(0.05)
        await on_stream(hub)
        [conn] = srv.streams.conns.values()
        assert conn.info()["streams"] == ["btcusdt@bookTicker"]
        cycles = hub.cycles
        srv.set_price("BTC/USDT", D("97.90"))
        await b.wait_phase(h, Phase.POSITION, timeout=30)
        assert hub.cycles == cycles  # the entry came from the resubscribed stream
