"""The market-data hub never hands a new watch a price cached before it subscribed: nobody
polls a symbol nobody watches, so that price may be a cooldown old."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

from tests.workflows.harness import MARKETS
from trader.exchange.feed import StaticFeed
from trader.exchange.paper import PaperExchange
from trader.hub import MarketHub


async def test_a_new_subscription_waits_for_a_fresh_price(tmp_path):
    feed = StaticFeed(dict(MARKETS))
    feed.set_price("BTC/USDT", D("101.50"))
    hub = MarketHub(PaperExchange(feed, db_path=tmp_path / "p.sqlite"), poll_interval_s=0.05)
    try:
        async with hub.subscription("BTC/USDT") as stream:
            assert (await anext(stream)).last == D("101.50")
        feed.set_price("BTC/USDT", D("99.00"))  # moves while nobody watches
        await asyncio.sleep(1.2)  # longer than the hub's freshness window
        cached = hub.latest("BTC/USDT")
        assert cached is not None and cached.last == D("101.50")  # still cached ...
        async with hub.subscription("BTC/USDT") as stream:
            first = await asyncio.wait_for(anext(stream), timeout=5)
        assert first.last == D("99.00")  # ... but never judged by a new watch
    finally:
        await hub.stop()


async def test_a_price_just_polled_is_handed_over_at_once(tmp_path):
    feed = StaticFeed(dict(MARKETS))
    feed.set_price("BTC/USDT", D("100"))
    hub = MarketHub(PaperExchange(feed, db_path=tmp_path / "p.sqlite"), poll_interval_s=0.05)
    try:
        async with hub.subscription("BTC/USDT") as a, hub.subscription("BTC/USDT") as b:
            assert (await anext(a)).last == (await anext(b)).last == D("100")
    finally:
        await hub.stop()


async def test_on_publish_hears_the_price_before_the_watch_does(tmp_path):
    """The latency bench's hub mark: told of each ticker as it is published."""
    feed = StaticFeed(dict(MARKETS))
    feed.set_price("BTC/USDT", D("100"))
    hub = MarketHub(PaperExchange(feed, db_path=tmp_path / "p.sqlite"), poll_interval_s=0.05)
    heard: list[D] = []
    hub.on_publish = lambda symbol, ticker: heard.append(ticker.last)
    try:
        async with hub.subscription("BTC/USDT") as stream:
            seen = await asyncio.wait_for(anext(stream), timeout=10)
            assert heard and heard[-1] == seen.last == D("100")
    finally:
        await hub.stop()


async def test_a_publish_hook_that_raises_never_stops_the_prices(tmp_path):
    """A broken hook (a bench's, a plug-in's) is logged; the poll goes on and the watches
    still get every price: raising out of the publish would have ended the poll task."""
    feed = StaticFeed(dict(MARKETS))
    feed.set_price("BTC/USDT", D("100"))
    hub = MarketHub(PaperExchange(feed, db_path=tmp_path / "p.sqlite"), poll_interval_s=0.05)

    def broken(symbol: str, ticker: object) -> None:
        raise RuntimeError("hook bug")

    hub.on_publish = broken
    try:
        async with hub.subscription("BTC/USDT") as stream:
            assert (await asyncio.wait_for(anext(stream), timeout=10)).last == D("100")
            feed.set_price("BTC/USDT", D("101"))
            while (await asyncio.wait_for(anext(stream), timeout=10)).last != D("101"):
                pass  # the next poll's price arrives: the poll task is alive
    finally:
        await hub.stop()


class LimiterFails(PaperExchange):
    """A ``PacedTickers`` exchange whose limiter wait raises once (a bug in it)."""

    fails = 1

    async def tickers_ready(self) -> None:
        if self.fails:
            self.fails -= 1
            raise RuntimeError("limiter bug")


async def test_a_limiter_wait_that_raises_is_logged_and_the_poll_goes_on(tmp_path, caplog):
    """Raised outside the cycle's try, it ended the poll task silently: no watch had a
    price again."""
    feed = StaticFeed(dict(MARKETS))
    feed.set_price("BTC/USDT", D("100"))
    hub = MarketHub(LimiterFails(feed, db_path=tmp_path / "p.sqlite"), poll_interval_s=0.05)
    try:
        async with hub.subscription("BTC/USDT") as stream:
            assert (await asyncio.wait_for(anext(stream), timeout=30)).last == D("100")
        assert "limiter bug" in caplog.text
    finally:
        await hub.stop()
