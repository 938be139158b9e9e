"""A step back of the wall clock (NTP) never lets a frozen price price an order. The hub
orders prices by their wall-clock stamp and drops one stamped before the price it holds,
so after a step back it drops every new price until the clock catches up; meanwhile the
stream's frames still flow (its connection looks live) and a REST answer looks older than
the held price. An order's price is judged on when the hub last accepted a price for the
symbol (monotonic), and the request's answer is used unless the hub accepted a newer
price while it was out. A fake wall clock (the paper exchange's and the fake stream's
stamps) and a fake stream behind the ``BookStream`` port; the hub is the real one."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal as D

from tests.workflows.harness import MARKETS
from trader.core.market import Ticker
from trader.exchange.feed import StaticFeed
from trader.exchange.paper import PaperExchange
from trader.hub import MarketHub

SYMBOL = "BTC/USDT"
STEP_S = 30.0


class Wall:
    """A wall clock (ms) that runs with real time and can be stepped."""

    def __init__(self) -> None:
        self.offset_s = time.time() - time.monotonic()

    def __call__(self) -> int:
        return int((time.monotonic() + self.offset_s) * 1000)


class StreamedPaper(PaperExchange):
    """The paper book, also pushed as a stream: a frame of every symbol every 20 ms."""

    streams = True

    async def watch_books(
        self, symbols: list[str], *, connection: int = 0
    ) -> dict[str, Ticker | None]:
        await asyncio.sleep(0.02)
        return dict(await self.fetch_tickers(symbols))

    async def unwatch_books(self, symbols: list[str]) -> None:
        pass

    async def reconnect_books(self, connection: int) -> None:
        pass


async def soon(check, *, timeout: float = 30) -> None:  # noqa: ANN001
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def stepped_back(tmp_path, cls: type[PaperExchange]) -> AsyncIterator[MarketHub]:  # noqa: ANN001
    """A hub watching the symbol at 100 on ``cls``; then the wall clock steps back and the
    book moves to 90."""
    wall = Wall()
    feed = StaticFeed(dict(MARKETS))
    feed.set_price(SYMBOL, D("100"))
    hub = MarketHub(cls(feed, db_path=tmp_path / "p.sqlite", clock=wall), poll_interval_s=0.05)
    try:
        async with hub.subscription(SYMBOL) as btc:
            assert (await asyncio.wait_for(anext(btc), 30)).last == D("100")
            if hub.stream is not None:
                await soon(lambda: hub.source(SYMBOL) == "stream")
            wall.offset_s -= STEP_S
            feed.set_price(SYMBOL, D("90"))
            yield hub
            held = hub.latest(SYMBOL)
            assert held is not None and held.last == D("100")  # frozen all along
    finally:
        await hub.stop()


async def test_a_stream_frozen_by_a_clock_step_back_never_prices_an_order(tmp_path):
    async with stepped_back(tmp_path, StreamedPaper) as hub:
        assert hub.stream is not None
        frames = hub.stream.frames
        await asyncio.sleep(2 * hub.order_price_age_s)  # nothing accepted since
        await soon(lambda: hub.stream is not None and hub.stream.frames > frames + 2)
        assert hub.source(SYMBOL) == "stream"  # its frames flow: the connection is live
        assert (hub.age_s(SYMBOL) or 0) < hub.order_price_age_s  # so it looks fresh
        assert (await hub.order_ticker(SYMBOL)).last == D("90")


async def test_a_rest_answer_after_a_clock_step_back_prices_the_order(tmp_path):
    async with stepped_back(tmp_path, PaperExchange) as hub:
        await soon(lambda: (hub.age_s(SYMBOL) or 0) > hub.order_price_age_s)
        assert (await hub.order_ticker(SYMBOL)).last == D("90")
