"""The per-worker market-data hub.

One background loop per worker fetches the tickers of every subscribed symbol in one
batched ``fetch_tickers`` call per cycle (the adapter chunks it by the exchange's limit)
and fans them out to the watch activities. The number of exchange requests per cycle does
not grow with the watchlist, and watch activities never call the exchange themselves. A
rate limit's ``Retry-After`` delays the next cycle; ccxt's throttler paces the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator

from trader.core.errors import BadSymbol, RetryableExchangeError, TraderError
from trader.core.market import Ticker
from trader.exchange.port import Exchange

log = logging.getLogger(__name__)


class MarketHub:
    """Polls the exchange for all subscribed symbols and publishes the latest tickers."""

    def __init__(self, exchange: Exchange, *, poll_interval_s: float = 0.5) -> None:
        self.exchange = exchange
        self.poll_interval_s = poll_interval_s
        self._subscribers: Counter[str] = Counter()
        self._latest: dict[str, Ticker] = {}
        self._received: dict[str, float] = {}  # symbol -> monotonic time of the last poll
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.cycles = 0
        self.last_error: str | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="market-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def latest(self, symbol: str) -> Ticker | None:
        return self._latest.get(symbol)

    async def ticker(self, symbol: str) -> Ticker:
        """A fresh ticker for one symbol (direct request; for order pricing and warm-up)."""
        tickers = await self.exchange.fetch_tickers([symbol])
        if symbol not in tickers:
            raise BadSymbol(f"exchange returned no ticker for {symbol}")
        self._latest[symbol] = tickers[symbol]
        self._received[symbol] = time.monotonic()
        return tickers[symbol]

    @contextlib.asynccontextmanager
    async def subscription(self, symbol: str) -> AsyncIterator[AsyncIterator[Ticker]]:
        """Subscribe while the block runs; iterate the yielded stream for each new ticker."""
        self._subscribers[symbol] += 1
        await self.start()
        try:
            yield self._stream(symbol)
        finally:
            self._subscribers[symbol] -= 1
            if self._subscribers[symbol] <= 0:
                del self._subscribers[symbol]

    def _fresh(self, symbol: str) -> bool:
        # Nobody polls a symbol nobody watches: what was cached when its last watch ended
        # (before a cooldown, say) may be minutes old, and a rule must never judge that.
        received = self._received.get(symbol)
        return received is not None and time.monotonic() - received <= max(
            2 * self.poll_interval_s, 1.0
        )

    def _newer(self, symbol: str, seen: int) -> bool:
        # A fresh ticker of ``symbol`` newer than the one a stream last yielded is cached.
        t = self._latest.get(symbol)
        return t is not None and t.ts_ms > seen and self._fresh(symbol)

    async def _stream(self, symbol: str) -> AsyncIterator[Ticker]:
        last_ts = -1
        while True:
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._newer, symbol, last_ts))
                ticker = self._latest[symbol]
            last_ts = ticker.ts_ms
            yield ticker

    async def _run(self) -> None:
        while True:
            symbols = sorted(self._subscribers)
            delay = self.poll_interval_s
            if symbols:
                try:
                    tickers = await self.exchange.fetch_tickers(symbols)
                except TraderError as exc:  # transient: the next cycle tries again
                    self.last_error = str(exc)
                    log.warning("market hub fetch failed: %s", exc)
                    # Rate limited: the exchange said when to come back; hammering it
                    # earlier only extends the ban (Binance 429 -> 418).
                    if isinstance(exc, RetryableExchangeError) and exc.retry_after:
                        delay = max(delay, exc.retry_after)
                except Exception as exc:  # a bug or a garbled answer: must not end every watch
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("market hub cycle failed unexpectedly")
                else:
                    self.last_error = None
                    self.cycles += 1
                    async with self._changed:
                        self._latest.update(tickers)
                        now = time.monotonic()
                        self._received.update(dict.fromkeys(tickers, now))
                        self._changed.notify_all()
            await asyncio.sleep(delay)
