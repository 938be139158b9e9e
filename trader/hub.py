"""The per-worker market-data hub.

Where the exchange streams its top of book (``BookStream``: ccxt.pro), the hub streams
every subscribed symbol first (``trader.hub_stream``: one connection per 200 symbols).
For every symbol the stream does not vouch for (down, silent for ``stream_stall_s``, or
not yet streamed) one background loop fetches the tickers in one batched
``fetch_tickers`` call per cycle (the adapter chunks it by the exchange's limit); without
a stream (paper, dry-run) that is every subscribed symbol, every cycle. While streaming,
the loop still fetches every symbol every ``VOLUME_REFRESH_S``: a book stream carries no
24 h volume. The tickers fan out to the watch activities, which never call the exchange
themselves. A rate limit's ``Retry-After`` delays the next cycle; ccxt's throttler paces
the rest.

**A price older than ``max_price_age_s`` is never handed to a watch**: the price's age is
the time since it was fetched, or, streamed, since the last frame on its connection (a
live stream that pushed nothing new says the book has not changed: the watch gets that
price again, re-dated, every ``poll_interval_s``). A watch waiting for a fresh price is
told so (``PriceWait``) about once a second.

**Prices only move forward in observation order**: a ticker is stamped when it was observed
(a REST one as its request leaves, a streamed one when its frame was read) and one
observed before the ticker held is dropped, whichever source it comes from: a REST answer
held up in flight (the fallback poll as the stream returns, the volume refresh, ``ticker``)
never undoes a newer streamed price. While the stream vouches for a symbol, REST adds only
its 24 h volume. **One price for every source**: ``last`` is the mid of bid and ask (a book
stream has no trades; the paper exchange and the backtest decide on the mid too), so a
switch between stream and REST does not jump by half the spread.

**An order is priced from the held price only while the hub accepted it at most
``order_price_age_s`` ago** (monotonic: a price the stream vouches for but has not pushed
again, or one frozen by a step back of the wall clock, does not count), far stricter than
a watch's limit (``order_ticker``); else ``ticker`` asks the exchange, as warm-up and
reconciliation always do, and a stale held price never prices an order. **A poll
chooses its symbols and is stamped as it leaves**: where the
exchange's rate limiter holds requests back (``PacedTickers``: ccxt's bucket, ~1.6 s per
100-symbol batch on Binance), the loop waits for it first, so a symbol subscribed
meanwhile is in that request, and its answer is not older than a single-ticker request
(an order's) that went first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

from trader.contracts import PriceWait
from trader.core.errors import BadSymbol, RetryableExchangeError, TraderError
from trader.core.market import Ticker
from trader.exchange.port import BookStream, Exchange, PacedTickers
from trader.hub_stream import StreamFeed

log = logging.getLogger(__name__)
ORDER_PRICE_AGE_S = 0.5
"""The default ``order_price_age_s`` (``ORDER_PRICE_AGE_SECONDS``; docs/architecture.md)."""
VOLUME_REFRESH_S = 60.0
"""While streaming, every symbol's ticker is fetched this often (24 h volume, last trade)."""
_WAIT_NOTE_S = 1.0  # a waiting watch is told why about this often


def at_mid(ticker: Ticker) -> Ticker:
    """The ticker priced at the mid of its book (as is where the book is not quotable)."""
    if 0 < ticker.bid <= ticker.ask and ticker.last != ticker.mid:
        return ticker.model_copy(update={"last": ticker.mid})
    return ticker


class MarketHub:
    """Streams (where it can) and polls the exchange for all subscribed symbols and
    publishes the latest tickers."""

    def __init__(
        self,
        exchange: Exchange,
        *,
        poll_interval_s: float = 0.5,
        max_price_age_s: float = 5.0,
        stream_stall_s: float = 2.0,
        volume_refresh_s: float = VOLUME_REFRESH_S,
        order_price_age_s: float = ORDER_PRICE_AGE_S,
    ) -> None:
        self.exchange = exchange
        self.poll_interval_s = poll_interval_s
        self.max_price_age_s = max_price_age_s
        self.order_price_age_s = order_price_age_s
        self._paced = exchange if isinstance(exchange, PacedTickers) else None
        self.volume_refresh_s = volume_refresh_s
        self.stream: StreamFeed | None = None
        """The stream side; None where the exchange has no stream (paper, dry-run)."""
        if isinstance(exchange, BookStream) and exchange.streams:
            self.stream = StreamFeed(exchange, self._publish_streamed, stall_s=stream_stall_s)
        self._refreshed = 0.0  # monotonic: the last fetch of every symbol while streaming
        self._subscribers: Counter[str] = Counter()
        self._latest: dict[str, Ticker] = {}
        self._received: dict[str, float] = {}  # symbol -> monotonic time of the last poll
        # symbol -> the futures of the watches waiting for its next ticker: a publish wakes
        # only its own symbols' watches (a frame of one symbol must not wake a thousand).
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.cycles = 0
        self.last_error: str | None = None
        self.on_publish: Callable[[str, Ticker], None] | None = None
        """Told of every ticker as it is published, before the watches wake (the latency
        bench's per-hop timestamps); must not block."""

    async def start(self) -> None:
        if self.stream is not None:
            self.stream.start()  # after a stop (both mode restarts the hub)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="market-hub")

    async def stop(self) -> None:
        if self.stream is not None:
            await self.stream.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def latest(self, symbol: str) -> Ticker | None:
        return self._latest.get(symbol)

    async def order_ticker(self, symbol: str) -> Ticker:
        """A ticker to price an order's limit on the hot path: the held one while the hub
        accepted it at most ``order_price_age_s`` ago, else ``ticker``'s request.

        Judged by when the hub accepted the price (monotonic), not by ``age_s`` nor by the
        wall-clock stamps alone: after a step back of the wall clock ``_publish`` drops every
        new price as older than the held one while the stream's frames still flow, so the
        frozen price would look fresh (``age_s``) and newer than the answer (``ts_ms``).
        Only orders take this shortcut: a limit off by a move of the last 0.5 s is one that
        does not fill (IOC) and a ladder step; a warm-up anchor or a reconciliation's bid
        taken from it would be judged against the price that moved."""
        accepted = self._received.get(symbol)
        limit = self.order_price_age_s
        if limit > 0 and accepted is not None and time.monotonic() - accepted <= limit:
            return self._latest[symbol]  # 0: always the request, even within a clock tick
        return await self.ticker(symbol)

    async def ticker(self, symbol: str) -> Ticker:
        """A fresh ticker for one symbol (a direct request; for warm-up and reconciliation,
        and for an order when the held price is too old): the request's answer, or the held
        one if the hub accepted it while the request was out and it was observed after the
        request was stamped (a frame that arrived meanwhile): never a held price older than
        the answer."""
        sent = time.monotonic()
        tickers = await self.exchange.fetch_tickers([symbol])
        if symbol not in tickers:
            raise BadSymbol(f"exchange returned no ticker for {symbol}")
        await self._publish(tickers)
        # While the stream vouches, _publish keeps the streamed price (the watches' one
        # price), which a stall shorter than stream_stall_s leaves stale: not for an order.
        fetched, held = at_mid(tickers[symbol]), self._latest[symbol]
        newer = self._received.get(symbol, sent) > sent and held.ts_ms > fetched.ts_ms
        return held if newer else fetched

    async def shared_ticker(self, symbol: str) -> Ticker:
        """The symbol's fresh price with no request of its own: the latest if fresh, else
        the next the poll loop (or stream) brings, subscribed for meanwhile (one symbol more
        in the loop's batched request, if nobody watched it). A both-mode shadow prices its
        book from it, so it never spends the primary's rate limit on tickers.

        Raises:
            RetryableExchangeError: no fresh price within ``max_price_age_s`` (the hub's
                own fetches fail): the caller retries, as after a failed request.
        """
        if self._fresh(symbol):
            return self._latest[symbol]
        try:
            async with asyncio.timeout(max(self.max_price_age_s, 4 * self.poll_interval_s)):
                async with self.subscription(symbol) as stream:
                    async for ticker in stream:
                        return ticker
        except TimeoutError:
            pass
        raise RetryableExchangeError(
            f"no fresh price for {symbol} from the market-data hub: {self.price_wait(symbol)}"
        )

    @contextlib.asynccontextmanager
    async def subscription(
        self, symbol: str, *, on_wait: Callable[[PriceWait], None] | None = None
    ) -> AsyncIterator[AsyncIterator[Ticker]]:
        """Subscribe while the block runs; iterate the yielded stream for each new ticker.
        ``on_wait`` hears, about once a second, why no fresh price comes."""
        self._subscribers[symbol] += 1
        if self.stream is not None:
            self.stream.want(symbol)
        await self.start()
        try:
            yield self._stream(symbol, on_wait)
        finally:
            self._subscribers[symbol] -= 1
            if self._subscribers[symbol] <= 0:
                del self._subscribers[symbol]

    def subscribers(self, symbol: str) -> int:
        """How many watches iterate the symbol's stream now."""
        return self._subscribers.get(symbol, 0)

    def source(self, symbol: str) -> str:
        """Where the symbol's price comes from now: ``stream`` or ``rest``."""
        vouched = self.stream is not None and self.stream.vouched_since(symbol) is not None
        return "stream" if vouched else "rest"

    def age_s(self, symbol: str) -> float | None:
        """How old the symbol's latest price is (None: none yet): since it was fetched, or
        since the last frame on its stream connection while the stream vouches for it."""
        received = self._received.get(symbol)
        if received is None:
            return None
        vouched = self.stream.vouched_since(symbol) if self.stream is not None else None
        return time.monotonic() - max(received, vouched or received)

    def _fresh(self, symbol: str) -> bool:
        # Nobody polls a symbol nobody watches: what was cached when its last watch ended
        # (before a cooldown, say) may be minutes old, and a rule must never judge that.
        # A polled price is fresh for two cycles; a streamed one while its stream vouches.
        age = self.age_s(symbol)
        if age is None:
            return False
        limit = self.max_price_age_s
        if self.source(symbol) == "rest":
            limit = min(limit, max(2 * self.poll_interval_s, 1.0))
        return age <= limit

    def _newer(self, symbol: str, seen: int) -> bool:
        # A fresh ticker of ``symbol`` newer than the one a stream last yielded is cached.
        t = self._latest.get(symbol)
        return t is not None and t.ts_ms > seen and self._fresh(symbol)

    def price_wait(self, symbol: str) -> PriceWait:
        """Why the symbol has no fresh price now."""
        detail = []
        if self.stream is not None:
            silent = self.stream.silent_for(symbol)
            detail.append("stream down" if silent is None else f"stream silent for {silent:.1f} s")
            if self.stream.last_error:
                detail.append(f"stream: {self.stream.last_error}")
        if self.last_error:
            detail.append(f"REST: {self.last_error}")
        age = self.age_s(symbol)
        return PriceWait(
            age_s=None if age is None else round(age, 3),
            max_age_s=self.max_price_age_s,
            source=self.source(symbol),
            detail="; ".join(detail) or "no price yet",
        )

    async def _stream(
        self, symbol: str, on_wait: Callable[[PriceWait], None] | None
    ) -> AsyncIterator[Ticker]:
        last_ts, noted = -1, 0.0
        while True:
            ticker = await self._next(symbol, last_ts)
            if ticker is None:
                age = self.age_s(symbol)
                stale = age is None or age > self.max_price_age_s
                if on_wait is not None and stale and time.monotonic() - noted >= _WAIT_NOTE_S:
                    noted = time.monotonic()
                    on_wait(self.price_wait(symbol))
                continue
            last_ts = ticker.ts_ms
            yield ticker

    async def _next(self, symbol: str, seen: int) -> Ticker | None:
        """The next fresh ticker within a poll interval, else the latest again if the
        stream vouches that it still holds (re-dated to now), else None."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.poll_interval_s):  # one timer per watch
                while not self._newer(symbol, seen):
                    woken = loop.create_future()
                    waiting = self._waiters.setdefault(symbol, set())
                    waiting.add(woken)
                    try:
                        await woken
                    finally:
                        waiting.discard(woken)
                        if not waiting and self._waiters.get(symbol) is waiting:
                            del self._waiters[symbol]
        except TimeoutError:
            t = self._latest.get(symbol)
            if t is None or self.source(symbol) != "stream" or not self._fresh(symbol):
                return None
            return t.model_copy(update={"ts_ms": max(int(time.time() * 1000), seen + 1)})
        return self._latest[symbol]

    async def _publish_streamed(self, tickers: dict[str, Ticker]) -> None:
        await self._publish(tickers, streamed=True)

    async def _publish(self, tickers: dict[str, Ticker], *, streamed: bool = False) -> None:
        now = time.monotonic()
        for symbol, ticker in tickers.items():
            held = self._latest.get(symbol)
            if held is not None and ticker.ts_ms < held.ts_ms:
                continue  # observed before the price held: never a step back
            if held is not None and not streamed and self.source(symbol) == "stream":
                volume = {"quote_volume": ticker.quote_volume}
                self._latest[symbol] = held.model_copy(update=volume)
                continue
            self._latest[symbol] = at_mid(ticker)
            self._received[symbol] = now
            if self.on_publish is not None:
                try:
                    self.on_publish(symbol, self._latest[symbol])
                except Exception:  # an observer's bug never stops the prices
                    log.exception("on_publish hook failed for %s", symbol)
            for woken in self._waiters.pop(symbol, ()):
                if not woken.done():
                    woken.set_result(None)

    def _polled(self) -> list[str]:
        """The symbols this cycle fetches: those the stream does not vouch for, and all of
        them every ``volume_refresh_s`` while streaming."""
        symbols = sorted(self._subscribers)
        if self.stream is None:
            return symbols
        if time.monotonic() - self._refreshed >= self.volume_refresh_s:
            self._refreshed = time.monotonic()
            return symbols
        return [s for s in symbols if self.stream.vouched_since(s) is None]

    async def _run(self) -> None:
        while True:
            delay = self.poll_interval_s
            try:
                if self._paced is not None:  # choose the symbols as the request can leave
                    await self._paced.tickers_ready()
                symbols = self._polled()
                tickers = await self.exchange.fetch_tickers(symbols) if symbols else None
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
                if tickers is not None:
                    self.last_error = None
                    self.cycles += 1
                    await self._publish(tickers)
                    if self.stream is not None:
                        self.stream.check(tickers)  # a silent connection REST sees moving
            await asyncio.sleep(delay)


class SharedHub(MarketHub):
    """The same hub as a both-mode shadow uses it: one state (the poll loop, the stream,
    the latest prices, the subscribers), but ``ticker`` asks the exchange nothing: it is
    ``shared_ticker``, so the shadow's warm-ups and order prices cost the primary's rate
    limit no request either; and ``start``/``stop`` do nothing: the hub's owner runs it, so
    a shadow that fails (the legacy engine stops its hub as it ends) never stops the
    primary's poll loop or closes its stream connections."""

    def __init__(self, hub: MarketHub) -> None:
        self.__dict__ = hub.__dict__  # not super().__init__(): the hub's own state, shared

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def ticker(self, symbol: str) -> Ticker:
        return await self.shared_ticker(symbol)

    async def order_ticker(self, symbol: str) -> Ticker:
        return await self.shared_ticker(symbol)
