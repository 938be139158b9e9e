"""Binance's WebSocket market streams, pushed from the simulated book (docs/binance-sim.md).

Endpoints: ``/ws`` and ``/ws/<stream>[/<stream>...]`` (raw frames; ccxt.pro connects to
``/ws/<n>`` and subscribes by message), ``/stream?streams=a/b`` (frames wrapped as
``{"stream": name, "data": frame}``). Messages ``SUBSCRIBE`` / ``UNSUBSCRIBE`` /
``LIST_SUBSCRIPTIONS`` are answered ``{"result": ..., "id": ...}``; a bad one
``{"error": {"code": 2, "msg": ...}, "id": ...}``.

When frames go out: a stream gets its current state when subscribed, then a frame whenever
its symbol's book changes: at once when a price is set (``SimServer.set_price``), else
found by a check every ``cadence_s`` (generated and replayed feeds move with time). A
stream whose book did not change gets its state again every ``idle_push_s``, unlike
Binance, whose books never stand still: a subscriber can then tell a quiet market from
a stalled stream. The server pings every 20 s (Binance does; ccxt answers).

Faults (``faults``; admin routes ``/_sim/streams/...``): ``disconnect`` drops every
connection (or those carrying one symbol) and may refuse new ones for a while; ``stall``
keeps connections open but sends no frames for N s (replies to messages still go);
``silence`` leaves the open connections half-open for good (new ones are fine);
``delay`` holds every frame N ms before it is sent; ``empty_side`` shows one side of a
symbol's book empty (Binance sends ``"b":"0.00000000"``, ``"B":"0.00000000"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from trader.binance_sim import stream_shapes as ws
from trader.binance_sim.stream_shapes import Snapshot

log = logging.getLogger(__name__)
MAX_STREAMS = 1024
"""Binance's limit of streams per connection."""


@dataclass
class StreamFaults:
    """What is injected now; keys are unified symbols, None meaning every symbol."""

    stall_until: dict[str | None, float] = field(default_factory=dict)
    delay_s: dict[str | None, float] = field(default_factory=dict)
    refuse_until: float = 0.0
    empty: dict[str, str] = field(default_factory=dict)  # symbol -> "bid" / "ask"

    def stalled(self, symbol: str | None, now: float) -> bool:
        return any(self.stall_until.get(k, 0.0) > now for k in (None, symbol))

    def delay(self, symbol: str | None) -> float:
        return max(self.delay_s.get(None, 0.0), self.delay_s.get(symbol, 0.0) if symbol else 0.0)

    def clear(self) -> None:
        self.stall_until.clear()
        self.delay_s.clear()
        self.empty.clear()
        self.refuse_until = 0.0


class _Conn:
    ids = itertools.count(1)

    def __init__(self, request: web.Request, sock: web.WebSocketResponse, combined: bool) -> None:
        self.id = next(self.ids)
        self.request, self.ws, self.combined = request, sock, combined
        self.streams: dict[str, str | None] = {}  # name -> symbol (None: all-market)
        self.sent: dict[str, tuple[Any, ...]] = {}  # "name" / "name:symbol" -> what was sent
        self.pushed_at: dict[str, float] = {}
        self.outbox: asyncio.Queue[tuple[float, str, str | None]] = asyncio.Queue()
        self.frames = 0
        self.methods: list[tuple[str, int]] = []  # (method, how many names) per message
        self.silent = False  # half-open: nothing more goes out, the socket stays open

    def carries(self, symbol: str | None) -> bool:
        return symbol is None or any(s in (None, symbol) for s in self.streams.values())

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.request.path_qs,
            "combined": self.combined,
            "streams": sorted(self.streams),
            "frames": self.frames,
        }


class StreamServer:
    """The market streams of one simulated exchange."""

    def __init__(
        self,
        snapshot: Callable[[str], Snapshot],
        symbols: Callable[[], list[str]],
        *,
        cadence_s: float = 0.1,
        idle_push_s: float = 1.0,
    ) -> None:
        self.snapshot, self.symbols = snapshot, symbols
        self.cadence_s, self.idle_push_s = cadence_s, idle_push_s
        self.faults = StreamFaults()
        self.conns: dict[int, _Conn] = {}
        self.frames_sent = 0
        self.sent_log: deque[tuple[int, str]] = deque(maxlen=10_000)
        """The latest frames of one symbol's stream as ``(sent_us, symbol)``, wall clock,
        when written to the socket (bench/exchange_latency.py's per-hop breakdown)."""
        self.connects = 0
        self._update_id = itertools.count(1)
        self._task: asyncio.Task[None] | None = None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/ws", self.handle),
            web.get("/ws/{names:.*}", self.handle),
            web.get("/stream", self.handle),
        ]

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sim-streams")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for conn in list(self.conns.values()):
            await conn.ws.close()

    # --- faults ---------------------------------------------------------------------------
    def disconnect(self, symbol: str | None = None, *, refuse_s: float = 0.0) -> int:
        """Drop the connections carrying ``symbol`` (None: all) as a network failure would
        (no close frame); refuse new ones for ``refuse_s``. Returns how many were dropped."""
        if refuse_s > 0:
            self.faults.refuse_until = time.monotonic() + refuse_s
        dropped = [c for c in self.conns.values() if c.carries(symbol)]
        for conn in dropped:
            if conn.request.transport is not None:
                conn.request.transport.abort()
        return len(dropped)

    def silence(self) -> int:
        """Every open connection stays open but sends nothing more, ever (half-open);
        new connections are fine. Returns how many went silent."""
        for conn in self.conns.values():
            conn.silent = True
        return len(self.conns)

    def stall(self, seconds: float, symbol: str | None = None) -> None:
        self.faults.stall_until[symbol] = time.monotonic() + seconds

    def delay(self, ms: float, symbol: str | None = None) -> None:
        self.faults.delay_s[symbol] = ms / 1000

    # --- pushing --------------------------------------------------------------------------
    def empty_side(self, symbol: str, side: str = "bid") -> None:
        """Show the symbol's ``side`` of the book empty from now on, pushed at once."""
        self.faults.empty[symbol] = side
        self.price_changed(symbol)

    def price_changed(self, symbol: str) -> None:
        """Push the symbol's new state now (event-driven: no cadence to wait for)."""
        for conn in self.conns.values():
            self._offer(conn, {}, only=symbol)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.cadence_s)
            cache: dict[str, Snapshot] = {}
            for conn in list(self.conns.values()):
                try:
                    self._offer(conn, cache)
                except Exception:  # one bad feed read must not stop every stream
                    log.exception("binance_sim: stream push failed")

    def _snap(self, symbol: str, cache: dict[str, Snapshot]) -> Snapshot:
        if symbol not in cache:
            snap = self.snapshot(symbol)
            empty = (Decimal(0), Decimal(0))
            if (side := self.faults.empty.get(symbol)) == "bid":
                snap = dataclasses.replace(snap, bid=empty)
            elif side == "ask":
                snap = dataclasses.replace(snap, ask=empty)
            cache[symbol] = snap
        return cache[symbol]

    def _offer(self, conn: _Conn, cache: dict[str, Snapshot], *, only: str | None = None) -> None:
        """Queue a frame for each of the connection's streams whose state changed (or is
        due again), of ``only``'s streams if given."""
        now = time.monotonic()
        for name, symbol in list(conn.streams.items()):
            if only is not None and symbol not in (None, only):
                continue
            due = now - conn.pushed_at.get(name, 0.0) >= self.idle_push_s
            if symbol is not None:
                snap = self._snap(symbol, cache)
                kind = name.split("@", 1)[1]
                if self._changed(conn, name, snap) or due:
                    self._send(conn, name, ws.frame(kind, snap, next(self._update_id)), symbol)
                continue
            symbols = [only] if only is not None else self.symbols()
            snaps = [self._snap(s, cache) for s in symbols]
            moved = [s for s in snaps if self._changed(conn, f"{name}:{s.symbol}", s)]
            out = snaps if due else moved
            if out:
                render = ws.ticker if name == "!ticker@arr" else ws.mini_ticker
                self._send(conn, name, [render(s) for s in out], None)

    @staticmethod
    def _changed(conn: _Conn, key: str, snap: Snapshot) -> bool:
        sig = (snap.bid, snap.ask, snap.last)
        if conn.sent.get(key) == sig:
            return False
        conn.sent[key] = sig
        return True

    def _send(self, conn: _Conn, name: str, payload: Any, symbol: str | None) -> None:
        now = time.monotonic()
        conn.pushed_at[name] = now
        if conn.silent or self.faults.stalled(symbol, now):
            return
        body = {"stream": name, "data": payload} if conn.combined else payload
        conn.outbox.put_nowait((now + self.faults.delay(symbol), json.dumps(body), symbol))

    async def _sender(self, conn: _Conn) -> None:
        while True:
            due, text, symbol = await conn.outbox.get()
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            await conn.ws.send_str(text)
            conn.frames += 1
            self.frames_sent += 1
            if symbol is not None:
                self.sent_log.append((time.time_ns() // 1000, symbol))

    # --- connections ----------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if time.monotonic() < self.faults.refuse_until:
            return web.Response(status=503, text="stream outage (injected)")
        combined = request.path == "/stream"
        raw = request.query.get("streams", "") if combined else request.match_info.get("names", "")
        sock = web.WebSocketResponse(heartbeat=20.0, autoping=True)
        await sock.prepare(request)
        conn = _Conn(request, sock, combined)
        self.conns[conn.id] = conn
        self.connects += 1
        sender = asyncio.create_task(self._sender(conn))
        # Names in the URL that are no stream (ccxt's ``/ws/0``) are ignored, as Binance does.
        self._subscribe(conn, [n for n in raw.split("/") if n], strict=False)
        try:
            async for msg in sock:
                if msg.type == WSMsgType.TEXT:
                    self._message(conn, msg.data)
        except ConnectionResetError:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
                await sender
            del self.conns[conn.id]
        return sock

    def _message(self, conn: _Conn, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            self._reply(conn, {"error": {"code": 3, "msg": "Invalid JSON"}, "id": None})
            return
        rid = msg.get("id") if isinstance(msg, dict) else None
        method = msg.get("method") if isinstance(msg, dict) else None
        params = msg.get("params", []) if isinstance(msg, dict) else None
        result: Any = None
        error: str | None = None
        if method == "LIST_SUBSCRIPTIONS":
            result = sorted(conn.streams)
        elif method in ("SUBSCRIBE", "UNSUBSCRIBE") and isinstance(params, list):
            names = [str(p) for p in params]
            conn.methods.append((method, len(names)))
            if method == "SUBSCRIBE":
                error = self._subscribe(conn, names, strict=True)
            else:
                for name in names:
                    conn.streams.pop(name, None)
        else:
            error = f"Invalid request: unknown method {method!r} or params"
        body = {"error": {"code": 2, "msg": error}} if error else {"result": result}
        self._reply(conn, {**body, "id": rid})

    @staticmethod
    def _reply(conn: _Conn, body: dict[str, Any]) -> None:
        # Behind the frames already queued (their order on the wire), never stalled.
        conn.outbox.put_nowait((time.monotonic(), json.dumps(body), None))

    def _subscribe(self, conn: _Conn, names: list[str], *, strict: bool) -> str | None:
        ids = {s.replace("/", "").lower(): s for s in self.symbols()}
        parsed = {n: ws.parse_stream(n, ids) for n in names}
        if strict and (bad := [n for n, p in parsed.items() if p is None]):
            return f"Invalid request: invalid stream name {bad[0]!r}"
        fresh = {n: p[0] for n, p in parsed.items() if p is not None and n not in conn.streams}
        if len(conn.streams) + len(fresh) > MAX_STREAMS:
            return f"Invalid request: more than {MAX_STREAMS} streams on one connection"
        conn.streams.update(fresh)
        # A new stream gets the current state at once, as a busy Binance book would.
        if fresh:
            self._offer(conn, {})  # never pushed: due at once
        return None
