"""The idle-refilling rate limiter: a pause pays the previous request's cost, and the
long-run rate and burst stay ccxt's (a fake clock: nothing here depends on real time)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from ccxt.async_support.base.throttler import Throttler

from trader.exchange.ccxt_setup import configure
from trader.exchange.ccxt_throttle import IdleRefillThrottler, until_free

RATE_MS = 100.0  # per unit of cost
BUCKET = {"refillRate": 1 / RATE_MS, "delay": 0.001, "capacity": 1.0, "tokens": 0, "cost": 1.0}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Ticking(Clock):
    """Each look moves time on by one unit's refill: the bucket always has one to grant."""

    def __call__(self) -> float:
        self.now += RATE_MS / 1000
        return self.now


async def granted(fut: asyncio.Future[None], *, within: float = 30) -> bool:
    """Whether the request is let through while the clock stands still (a frozen clock
    refills nothing: one still waiting after a moment waits for good)."""
    try:
        await asyncio.wait_for(asyncio.shield(fut), within)
    except TimeoutError:
        return False
    return True


async def test_a_pause_pays_the_previous_requests_cost():
    clock = Clock()
    t = IdleRefillThrottler(dict(BUCKET), clock=clock)
    assert await granted(t(0.8))  # tokens 0 -> -0.8
    clock.now += 0.08  # idle for 0.8 x 100 ms: paid
    assert await granted(t(0.8))


async def test_ccxts_own_bucket_makes_it_wait_after_the_same_pause():
    """What the replacement is for: ccxt's refills only once a request waits."""
    stock = Throttler(dict(BUCKET))
    await stock(0.8)
    await asyncio.sleep(0.1)  # a pause longer than the cost (nothing counts it)
    assert stock.config["tokens"] == -0.8  # still owed: the next caller waits it out again


async def test_no_request_passes_while_the_debt_stands():
    clock = Clock()
    t = IdleRefillThrottler(dict(BUCKET), clock=clock)
    assert await granted(t(0.8))
    clock.now += 0.04  # half paid
    waiting = t(0.8)
    assert not await granted(waiting, within=0.2)
    clock.now += 0.041  # the rest (and a little: float sums)
    assert await granted(waiting)


async def test_a_long_pause_buys_no_more_than_the_capacity():
    clock = Clock()
    t = IdleRefillThrottler(dict(BUCKET), clock=clock)
    clock.now += 3600  # an hour idle: one token (capacity), not 36,000
    assert await granted(t(1.0))  # 1 -> 0
    assert await granted(t(1.0))  # 0 -> -1 (ccxt's rule: a request passes at >= 0)
    assert not await granted(t(1.0), within=0.2)


async def test_a_request_given_up_while_it_waits_is_not_charged():
    """Its attempt timed out (cancelled): the next one pays only its own cost."""
    clock = Clock()
    t = IdleRefillThrottler(dict(BUCKET), clock=clock)
    assert await granted(t(0.8))  # a debt: the next waits
    given_up = t(0.8)
    await asyncio.sleep(0)
    given_up.cancel()
    clock.now += 0.08  # the debt paid: only the live request remains to be charged
    assert await granted(t(0.8))
    assert t.config["tokens"] == pytest.approx(-0.8) and not t.queue


def test_every_client_built_for_the_adapter_has_it():
    for pro in (False, True):
        ex = configure(
            "binance",
            api_key=None,
            api_secret=None,
            sandbox=False,
            api_url=None,
            timeout_s=5,
            rate_limit_ms=50,
            pro=pro,
        )
        assert isinstance(ex.throttler, IdleRefillThrottler)
        assert ex.throttler.config["refillRate"] == 1 / 50


async def test_until_free_takes_its_turn_in_a_queue_that_is_never_empty():
    """The order client with a few resting orders: lookups, cancels and fetch_order polls
    keep its queue busy. A wait for "no debt and nobody queued" never ended (every queued
    request overtook it) and the order's ticker request starved until its activity timed
    out; one in the queue's order is let through in turn, charging nothing."""
    t = IdleRefillThrottler(dict(BUCKET), clock=Ticking())

    async def busy() -> None:
        while True:
            await t(1.0)

    workers = [asyncio.create_task(busy()) for _ in range(6)]
    try:
        await asyncio.sleep(0)  # all six queued
        await asyncio.wait_for(until_free(SimpleNamespace(throttler=t)), 30)
        assert t.queue  # still busy: it had its turn, not a quiet moment
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


async def test_until_free_charges_nothing():
    t = IdleRefillThrottler(dict(BUCKET), clock=Clock())
    await asyncio.wait_for(until_free(SimpleNamespace(throttler=t)), 30)
    assert t.config["tokens"] == 0 and not t.queue
