"""The market hub's stream side: top-of-book subscriptions for every streamed symbol.

Symbols are streamed in chunks of ``chunk_size`` in the order they were first wanted, each
chunk one subscription on a connection of its own (ccxt's limit of subscriptions per
Binance connection is 200; Binance allows 1,024 streams). A new symbol grows only the
last chunk, on the same connection and without ending it: ccxt subscribes the grown list
with one SUBSCRIBE (it names every stream of the list again: ccxt's ``watch_bids_asks``
has no way to name only the new ones for a list it waits on; Binance keeps a stream it is
asked for twice once), no UNSUBSCRIBE, and the chunk keeps vouching for the symbols it
had frames of. A streamed symbol stays
streamed (a watch returning at its checkpoint must not cost a resubscription). A chunk
vouches for a symbol's price while frames arrive on its connection (within ``stall_s``)
and the symbol had a frame since the chunk was last subscribed; the hub polls REST for
every symbol no chunk vouches for.

Liveness is told from frames, not from pings: Binance sends a ``bookTicker`` frame only
when a book changes, so a connection whose books stand still (a quiet market, a few
symbols on it) goes silent past ``stall_s`` and its symbols are polled over REST until
its next frame: that costs requests, never a stale price. A dead socket errors (ccxt
answers the server's pings and reconnects); a half-open one is told apart from a quiet
one by REST: a connection silent for ``SILENT_FACTOR`` x ``stall_s`` while REST shows one
of its books moved (and still no frame ``stall_s`` later) is closed and dialled anew
(``check``), with a backoff. The local server pushes an unchanged book every
``idle_push_s`` unlike Binance; tests of the quiet case turn that off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

from trader.core.market import Ticker
from trader.exchange.port import BookStream

log = logging.getLogger(__name__)
CHUNK_SIZE = 200
"""Symbols per stream connection."""
SILENT_FACTOR = 3
"""A connection silent this many ``stall_s`` while REST shows its books moving is closed
and dialled anew (a half-open socket never errors), with a backoff."""
_RECONNECT_BACKOFF_S = (5.0, 60.0)  # first and longest wait before the next redial
_REBUILD_AFTER_S = 0.25
"""A burst of new symbols (a worker starting) becomes one message per connection, at most
one per connection per 250 ms (Binance allows 5 incoming messages per second)."""


@dataclass
class _Chunk:
    symbols: tuple[str, ...]
    last_frame: float | None = None  # monotonic; None: down, or nothing since subscribing
    seen: set[str] = field(default_factory=set)  # had a frame since subscribing
    task: asyncio.Task[None] | None = None
    mids: dict[str, Decimal] = field(default_factory=dict)  # the last streamed prices
    started: float = field(default_factory=time.monotonic)
    backoff: float = _RECONNECT_BACKOFF_S[0]  # before this chunk may be redialled
    redialling: bool = False
    moved_at: float | None = None  # when REST first saw a book move the stream did not


class StreamFeed:
    """Keeps the wanted symbols subscribed and publishes what the stream pushes."""

    def __init__(
        self,
        source: BookStream,
        publish: Callable[[dict[str, Ticker]], Awaitable[None]],
        *,
        stall_s: float,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.source, self.publish = source, publish
        self.stall_s, self.chunk_size = stall_s, max(1, chunk_size)
        self._wanted: set[str] = set()
        self._order: list[str] = []  # in the order first wanted: chunks never reshuffle
        self._chunks: list[_Chunk] = []
        self._of: dict[str, _Chunk] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.frames = 0
        self.errors = 0
        self.subscribes = 0
        self.redials = 0
        self._redialling: set[asyncio.Task[None]] = set()
        self.last_error: str | None = None

    def want(self, symbol: str) -> None:
        if symbol not in self._wanted:
            self._wanted.add(symbol)
            self._order.append(symbol)
            self._wake.set()
        self.start()

    def start(self) -> None:
        """Stream every wanted symbol (again, after ``stop``)."""
        if self._task is None and self._order:
            self._wake.set()  # after a stop every chunk is subscribed anew
            self._task = asyncio.create_task(self._run(), name="market-hub-stream")

    def vouched_since(self, symbol: str) -> float | None:
        """Monotonic time up to which the stream vouches for the symbol's latest price (the
        last frame on its connection); None while it does not (down, silent past
        ``stall_s``, or no frame of the symbol since subscribing)."""
        chunk = self._of.get(symbol)
        if chunk is None or chunk.last_frame is None or symbol not in chunk.seen:
            return None
        if time.monotonic() - chunk.last_frame > self.stall_s:
            return None
        return chunk.last_frame

    def silent_for(self, symbol: str) -> float | None:
        """Seconds since the last frame on the symbol's connection (None: none yet)."""
        chunk = self._of.get(symbol)
        if chunk is None or chunk.last_frame is None:
            return None
        return time.monotonic() - chunk.last_frame

    async def stop(self) -> None:
        """End every subscription; ``start`` (or a new ``want``) subscribes them anew."""
        chunks = (c.task for c in self._chunks)
        tasks = [t for t in (self._task, *self._redialling, *chunks) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:  # asyncio.wait: a cancellation of stop() itself still propagates
            await asyncio.wait(tasks)
        self._task = None
        self._chunks.clear()  # no chunk vouches for anything while stopped
        self._of.clear()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(_REBUILD_AFTER_S)
            self._wake.clear()
            await self._rebuild()

    async def _rebuild(self) -> None:
        n = self.chunk_size
        wanted = [tuple(self._order[i : i + n]) for i in range(0, len(self._order), n)]
        for i, symbols in enumerate(wanted):
            old = self._chunks[i] if i < len(self._chunks) else None
            if old is not None and old.symbols == symbols:
                continue
            if old is not None and symbols[: len(old.symbols)] == old.symbols:
                await self._grow(i, old, symbols)  # (chunks only ever grow at the end)
                continue
            if old is not None:
                await self._end(old)
            chunk = _Chunk(symbols)
            self._start(i, chunk)
            if old is None:
                self._chunks.append(chunk)
            else:
                self._chunks[i] = chunk
            self._of.update(dict.fromkeys(symbols, chunk))
            self.subscribes += 1

    def check(self, rest: dict[str, Ticker]) -> None:
        """Redial each connection silent past ``SILENT_FACTOR`` x ``stall_s`` (and its
        backoff) whose books REST shows moving since its last frames."""
        now = time.monotonic()
        for i, chunk in enumerate(self._chunks):
            if chunk.last_frame is None or chunk.redialling:
                continue  # down: ccxt redials itself
            silent = now - chunk.last_frame
            moved = [s for s, m in chunk.mids.items() if s in rest and rest[s].mid != m]
            waited = now - chunk.started >= chunk.backoff
            if not moved or not waited or silent <= SILENT_FACTOR * self.stall_s:
                chunk.moved_at = None
                continue
            if chunk.moved_at is None:  # the frame of the move may be on its way still
                chunk.moved_at = now
            elif now - chunk.moved_at >= self.stall_s:
                chunk.redialling = True
                log.warning(
                    "market stream %d silent for %.1f s while %s moved: redialling",
                    i,
                    silent,
                    moved[0],
                )
                task = asyncio.create_task(self._redial(i, chunk), name=f"market-stream-redial-{i}")
                self._redialling.add(task)
                task.add_done_callback(self._redialling.discard)

    def _start(self, connection: int, chunk: _Chunk) -> None:
        chunk.task = asyncio.create_task(
            self._watch(connection, chunk), name=f"market-stream-{connection}"
        )

    async def _redial(self, connection: int, old: _Chunk) -> None:
        if old.task is not None:
            old.task.cancel()
            await asyncio.wait([old.task])
        try:
            await asyncio.wait_for(self.source.reconnect_books(connection), 5.0)
        except Exception as exc:  # the new watch dials anew either way
            log.info("market stream: closing connection %d failed: %s", connection, exc)
        if connection >= len(self._chunks) or self._chunks[connection] is not old:
            return  # stopped or rebuilt meanwhile
        chunk = _Chunk(old.symbols, backoff=min(old.backoff * 2, _RECONNECT_BACKOFF_S[1]))
        self._start(connection, chunk)
        self._chunks[connection] = chunk
        self._of.update(dict.fromkeys(chunk.symbols, chunk))
        self.redials += 1

    async def _grow(self, connection: int, chunk: _Chunk, symbols: tuple[str, ...]) -> None:
        # The same chunk (its frames, what it vouches for) waits on the longer list now.
        if chunk.task is not None:
            chunk.task.cancel()
            await asyncio.wait([chunk.task])
        chunk.symbols = symbols
        self._of.update(dict.fromkeys(symbols, chunk))
        self._start(connection, chunk)
        self.subscribes += 1

    async def _end(self, chunk: _Chunk) -> None:
        if chunk.task is not None:
            chunk.task.cancel()
            # Not ``suppress(CancelledError)``: that would swallow a stop() meanwhile.
            await asyncio.wait([chunk.task])
        # A dropped connection has nothing left to end; never wait long for it.
        try:
            await asyncio.wait_for(self.source.unwatch_books(list(chunk.symbols)), 5.0)
        except Exception as exc:  # the new subscription replaces it either way
            log.info("market stream: ending the old subscription failed: %s", exc)

    async def _watch(self, connection: int, chunk: _Chunk) -> None:
        backoff = 0.2
        while True:
            try:
                books = await self.source.watch_books(list(chunk.symbols), connection=connection)
            except Exception as exc:  # down: REST takes over at once, the stream is retried
                chunk.last_frame = None
                chunk.seen.clear()
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "market stream %d down (%s); retrying in %.1f s", connection, exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.2
            chunk.last_frame = time.monotonic()
            priced = {s: t for s, t in books.items() if t is not None}
            chunk.seen.update(priced)
            chunk.mids.update((s, t.mid) for s, t in priced.items())
            chunk.seen.difference_update(s for s, t in books.items() if t is None)  # no price
            self.frames += 1
            if priced:
                await self.publish(priced)
