"""ccxt's leaky-bucket rate limiter, refilled while it stands idle too.

ccxt's own bucket (``ccxt.async_support.base.throttler``) refills only while a request
waits in its queue, counting from when that wait began. A request after a pause therefore
waited the previous request's whole cost again (cost x rateLimit: 80 ms behind a Binance
ticker, 40 ms behind an order lookup), though the pause had long paid it. On the order path
that came to ~140 ms of a 220 ms trigger -> buy (docs/benchmarks.md, per-hop breakdown).

This one keeps ccxt's model (the same capacity, cost and refill rate, so the same long-run
request rate) and counts the refill from the last time it looked, idle or not. After a
pause it lets ``capacity`` units plus one request through at once, where ccxt's, refilling
only while a request waits, let about one request through: one unit more per client at
ccxt's capacity of 1 (the three clients together: ~12 of Binance's 6000 weight a minute).
A request given up while it waits (its attempt timed out and was cancelled) leaves the
queue unpaid: ccxt's would still charge it at the head of the queue, and on a slow
exchange the next attempt would wait behind it and time out in turn. Both apply to the
leaky bucket only (every exchange's default in ccxt 4.5); a rolling-window limiter keeps
ccxt's own loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from ccxt.async_support.base.throttler import Throttler


class IdleRefillThrottler(Throttler):  # type: ignore[misc]  # ccxt is untyped
    """A drop-in for a ccxt client's ``throttler`` (``install`` puts it there)."""

    running: bool  # ccxt's (untyped): the loop is on

    def __init__(
        self,
        config: dict[str, Any],
        loop: Any = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config, loop)
        self._clock = clock
        self._refilled_ms = clock() * 1000

    def refill(self) -> None:
        """Bring ``tokens`` up to now (the loop does it before each grant)."""
        now = self._clock() * 1000
        cfg = self.config
        cfg["tokens"] = min(
            cfg["tokens"] + (now - self._refilled_ms) * cfg["refillRate"], cfg["capacity"]
        )
        self._refilled_ms = now

    async def leaky_bucket_loop(self) -> None:
        cfg = self.config
        while self.running:
            future, cost = self.queue[0]
            if future.done():  # given up while it waited: not charged
                self.queue.popleft()
                self.running = bool(self.queue)
                continue
            self.refill()
            if cfg["tokens"] >= 0:
                cfg["tokens"] -= cfg["cost"] if cost is None else cost
                future.set_result(None)
                self.queue.popleft()
                await asyncio.sleep(0)  # as ccxt's: let the granted request go first
                if not self.queue:
                    self.running = False
            else:  # until the debt is paid (ccxt's delay at least: no busy loop), looking
                # again at least every second rather than once after a minute-long sleep
                debt_s = -cfg["tokens"] / cfg["refillRate"] / 1000
                await asyncio.sleep(min(max(cfg["delay"], debt_s), 1.0))


def install(client: Any) -> None:
    """Give a ccxt async client (REST or pro) the idle-refilling bucket, with its settings."""
    if client.throttler is not None and client.tokenBucket is not None:
        client.throttler = IdleRefillThrottler(client.tokenBucket, client.throttler.loop)


def resize(client: Any, capacity: float, *, clock: Callable[[], float] = time.monotonic) -> None:
    """A full bucket of at least ``capacity`` units for ``client`` (same cost and refill
    rate: the long-run rate is unchanged), so that many units pass together after a pause.
    A rolling-window limiter is left as it is (it forgets old costs by itself)."""
    old = client.throttler
    if old is None or old.config.get("algorithm") != "leakyBucket":
        return
    cap = max(float(old.config["capacity"]), capacity)
    client.throttler = IdleRefillThrottler(
        {**old.config, "capacity": cap, "tokens": cap}, old.loop, clock=clock
    )


async def until_free(client: Any) -> None:
    """Return at this caller's turn in ``client``'s bucket (queue order, once no debt is
    owed), charging nothing: a request built then leaves as it is built unless another
    was queued meanwhile, so what it asks for and its stamp are those of about the moment
    it is sent, and never newer (a stamp that errs, errs older: safe, the hub prefers the
    newer price). It takes a place in the queue like any request: a wait for an empty
    queue was overtaken by every request queued meanwhile, and on a busy order client
    (resting orders' lookups and polls) an order's ticker request starved. A rolling-window
    limiter (not this bucket) returns at once."""
    bucket = client.throttler
    if isinstance(bucket, IdleRefillThrottler):
        await bucket(0)
