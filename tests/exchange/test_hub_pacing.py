"""A throttled poll chooses its symbols and is stamped as it leaves. ccxt's bucket holds a
100-symbol batch ~1.6 s at ccxt's Binance pacing; a poll that fixed its list and its stamp
when it was asked (before that wait) left out a symbol subscribed meanwhile, and a
single-ticker request sent meanwhile (an order's) made its newer answer look older than
the held price, so the hub dropped it: either way the price came one cycle (~1.6 s) late
(docs/benchmarks.md, per-hop breakdown, REST with 100 symbols)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal as D

from tests.exchange.sim_fixtures import generated_markets, sim_and_adapter
from trader.binance_sim import SimServer
from trader.core.market import Ticker
from trader.hub import MarketHub

TICKERS = "GET /api/v3/ticker/24hr"
SYMBOL = "BTC/USDT"


async def soon(check, *, timeout: float = 30) -> None:  # noqa: ANN001
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def batched(tmp_path) -> AsyncIterator[tuple[SimServer, MarketHub]]:  # noqa: ANN001
    """99 symbols polled in one throttled batch, its first answer in."""
    async with sim_and_adapter(tmp_path, extra_markets=99) as (srv, ex):
        hub = MarketHub(ex, poll_interval_s=0.05)
        try:
            async with contextlib.AsyncExitStack() as stack:
                others = [
                    await stack.enter_async_context(hub.subscription(s))
                    for s in sorted(generated_markets(99))
                ]
                await anext(others[0])
                yield srv, hub
        finally:
            await hub.stop()


async def just_after_a_poll(hub: MarketHub) -> None:
    """Past the instant the loop would have asked again (0.05 s after an answer): the next
    batch waits in the bucket now."""
    cycles = hub.cycles
    await soon(lambda: hub.cycles > cycles)
    await asyncio.sleep(0.3)


async def test_a_symbol_subscribed_while_the_poll_waits_is_in_that_poll(tmp_path):
    async with batched(tmp_path) as (srv, hub):
        await just_after_a_poll(hub)
        sent = srv.stats[TICKERS]
        async with hub.subscription(SYMBOL) as btc:
            first = await asyncio.wait_for(anext(btc), 30)
        assert first.last == D("100")
        assert srv.stats[TICKERS] - sent == 1  # the first batch sent since brought it


async def test_a_single_ticker_sent_while_the_poll_waits_never_drops_its_answer(tmp_path):
    async with batched(tmp_path) as (srv, hub), hub.subscription(SYMBOL) as btc:
        await asyncio.wait_for(anext(btc), 30)
        await just_after_a_poll(hub)
        # Old enough that an order asks the exchange itself (a single-ticker request,
        # on the order client: not behind the batch), while the batch still waits.
        await soon(lambda: (hub.age_s(SYMBOL) or 0) > 0.6)
        await hub.ticker(SYMBOL)
        event = srv.set_price(SYMBOL, D("97"))
        sent = srv.stats[TICKERS]

        async def moved() -> Ticker:
            async for t in btc:
                if t.last == D("97"):
                    return t
            raise AssertionError("stream ended")

        await asyncio.wait_for(moved(), 30)
        # The first batch sent since the price moved brought it.
        batches = [r for r in srv.requests if r[1] == TICKERS and r[0] >= event["ts_us"]]
        assert srv.stats[TICKERS] - sent == 1, batches


async def test_without_a_batch_endpoint_the_poll_waits_on_the_client_it_polls_on(tmp_path):
    """Such an exchange is polled symbol by symbol on the order client: the wait before the
    poll chooses its symbols is that client's turn, not the idle market-data client's."""
    async with sim_and_adapter(tmp_path) as (_, ex):
        ex._ex.has = {**ex._ex.has, "fetchTickers": False}
        queued = [ex._ex.throttler(10.0) for _ in range(2)]  # each owes ~0.5 s
        await asyncio.wait_for(ex.tickers_ready(), 60)
        assert all(f.done() for f in queued)
