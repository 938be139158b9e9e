"""The market-data hub over the real ccxt client: the number of ticker requests per cycle does
not grow with the watchlist (counted by the local Binance server), and a rate limit's
Retry-After holds the next cycle back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from decimal import Decimal as D

import pytest

from tests.exchange.sim_fixtures import generated_markets, sim_and_adapter
from trader.binance_sim import SimServer
from trader.binance_sim.faults import FaultRule
from trader.core.market import Ticker
from trader.hub import MarketHub

TICKERS = "GET /api/v3/ticker/24hr"
# ccxt's throttler spaces Binance ticker/24hr requests (weight 16 x 50 ms = 0.8 s each).
CYCLES = 3


async def requests_per_cycle(
    srv: SimServer, hub: MarketHub, symbols: list[str], cycles: int
) -> float:
    """Subscribe ``symbols`` (as that many watch activities would), run ``cycles`` hub cycles
    and return the ticker requests the server counted per cycle."""
    async with contextlib.AsyncExitStack() as stack:
        streams = [await stack.enter_async_context(hub.subscription(s)) for s in symbols]
        await anext(streams[0])  # the first cycle has run
        srv.stats.clear()
        start = hub.cycles
        while hub.cycles < start + cycles:
            await asyncio.sleep(0.01)
        counted = srv.stats[TICKERS]
    return counted / (hub.cycles - start)


@pytest.mark.parametrize("watchlist", [1, 10, 100])
async def test_one_ticker_request_per_cycle_whatever_the_watchlist(tmp_path, watchlist):
    async with sim_and_adapter(tmp_path, extra_markets=100) as (srv, ex):
        hub = MarketHub(ex, poll_interval_s=0.02)
        symbols = sorted(generated_markets(100))[:watchlist]
        try:
            per_cycle = await requests_per_cycle(srv, hub, symbols, CYCLES)
        finally:
            await hub.stop()
        # Up to one more request may be in flight when the count is read.
        assert 1.0 <= per_cycle <= 1.0 + 1 / CYCLES
        assert set(hub._latest) >= set(symbols)


async def test_chunks_follow_the_exchange_limit(tmp_path):
    async with sim_and_adapter(tmp_path, extra_markets=100, tickers_chunk_size=50) as (srv, ex):
        hub = MarketHub(ex, poll_interval_s=0.02)
        try:
            per_cycle = await requests_per_cycle(srv, hub, sorted(generated_markets(100)), CYCLES)
        finally:
            await hub.stop()
        assert 2.0 <= per_cycle <= 2.0 + 2 / CYCLES  # 50 + 50


async def test_rate_limit_retry_after_holds_the_next_cycle(tmp_path):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        await ex.load_markets()
        hub = MarketHub(ex, poll_interval_s=0.05)
        srv.faults.add(FaultRule(endpoint=TICKERS, kind="rate_limit", seconds=2))
        t0 = time.monotonic()
        try:
            async with hub.subscription("BTC/USDT") as stream:
                ticker = await asyncio.wait_for(anext(stream), timeout=10)
        finally:
            await hub.stop()
        waited = time.monotonic() - t0
        assert ticker.symbol == "BTC/USDT"
        assert waited >= 2.0  # not retried at the 0.05 s poll interval
        assert srv.stats[TICKERS] == 2  # the 429, then one request after Retry-After


class _GarbledOnce:
    """An exchange whose first answer breaks the hub in an unforeseen way (not a
    TraderError), then answers normally."""

    def __init__(self) -> None:
        self.calls = 0

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        self.calls += 1
        if self.calls == 1:
            raise ValueError("garbled answer")
        return {
            s: Ticker(symbol=s, ts_ms=self.calls, bid=D(1), ask=D(1), last=D(1)) for s in symbols
        }


async def test_an_unforeseen_error_does_not_stop_the_hub_for_good():
    ex = _GarbledOnce()
    hub = MarketHub(ex, poll_interval_s=0.01)  # type: ignore[arg-type]  # fetch_tickers only
    try:
        async with hub.subscription("BTC/USDT") as stream:
            ticker = await asyncio.wait_for(anext(stream), timeout=5)
        assert ticker.symbol == "BTC/USDT" and ex.calls >= 2
        assert hub.last_error is None
    finally:
        await hub.stop()
