"""``SimServer``: the simulated Binance spot API on 127.0.0.1, in-process or as a process.

    async with SimServer(SimConfig(feed=feed, balances={"USDT": Decimal(10_000)})) as srv:
        exchange.urls["api"]["public"] = srv.url + "/api/v3"   # see docs/binance-sim.md
        srv.faults.add(FaultRule(endpoint="POST /api/v3/order", kind="accept_then_drop"))

Tests reach the same state directly (``srv.faults``, ``srv.stats``, ``srv.set_price``,
``srv.engine``) or over the admin API under ``/_sim/`` (``SimControl``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shutil
import tempfile
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from trader.binance_sim import admin
from trader.binance_sim.config import SimConfig
from trader.binance_sim.consistency import Consistency
from trader.binance_sim.engine import SimEngine
from trader.binance_sim.errors import BinanceError
from trader.binance_sim.faults import FaultBook
from trader.binance_sim.market import MarketApi
from trader.binance_sim.streams import StreamServer
from trader.binance_sim.trading import ARRIVED_US, TradingApi
from trader.exchange.feed import StaticFeed
from trader.exchange.paper import PaperExchange

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


REQUEST_LOG = 10_000
"""How many requests ``SimServer.requests`` keeps."""


def now_ms() -> int:
    return int(time.time() * 1000)


class SimServer:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.feed = config.feed
        self.faults = FaultBook(seed=config.fault_seed)
        for rule in config.faults:
            self.faults.add(rule)
        self.stats: Counter[str] = Counter()
        """Requests per ``"METHOD /path"`` (every ``/api`` request, faulted ones included)."""
        self.price_events: list[dict[str, Any]] = []
        """Prices set through ``set_price``, with the server time they took effect."""
        self.requests: deque[tuple[int, str, str]] = deque(maxlen=REQUEST_LOG)
        """The latest ``/api`` requests as ``(arrived_us, "METHOD /path", the client order id
        in the query string or "")``, on the server's wall clock (bench/exchange_latency.py's
        per-hop breakdown reads it)."""
        self._tmp: str | None = None
        data_dir = config.data_dir
        if data_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="binance-sim-")
            data_dir = Path(self._tmp)
        self.exchange = PaperExchange(
            config.feed,
            db_path=data_dir / "orders.sqlite",
            quote_balances=config.balances,
            spread_bps=config.spread_bps,
            depth_levels=config.depth_levels,
            level_liquidity_quote=config.level_liquidity_quote,
            fee_rate=config.fee_rate,
            clock=now_ms,
            name="binance_sim",
            fee_in_received_asset=config.fee_in_received_asset,
            reuse_final_client_ids=config.duplicate_client_ids == "while_open",
        )
        consistency = Consistency(lookup_lag_s=config.lookup_lag_s, list_lag_s=config.list_lag_s)
        self.engine = SimEngine(config.feed, self.exchange, now_ms, consistency)
        self.market_api = MarketApi(self.engine, now_ms)
        self.api = TradingApi(self.engine, config, now_ms)
        self.streams = StreamServer(
            self.market_api.snapshot,
            lambda: config.feed.symbols,
            cadence_s=config.stream_cadence_s,
            idle_push_s=config.stream_idle_push_s,
        )
        """The WebSocket market streams (``/ws``, ``/stream``) and their faults."""
        self._runner: web.AppRunner | None = None
        self._rematcher: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    def set_price(self, symbol: str, price: Decimal) -> dict[str, Any]:
        """Set a ``StaticFeed`` price and record the event (server time in ms and µs)."""
        if not isinstance(self.feed, StaticFeed):
            raise TypeError("prices can only be set on a StaticFeed")
        symbol = self.engine.symbol(symbol)
        self.feed.set_price(symbol, price)
        ts_us = time.time_ns() // 1000
        event = {"symbol": symbol, "price": str(price), "ts_ms": ts_us // 1000, "ts_us": ts_us}
        self.price_events.append(event)
        self.streams.price_changed(symbol)
        return event

    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware])
        app.add_routes(self.market_api.routes())
        app.add_routes(self.api.routes())
        app.add_routes(admin.routes(self))
        app.add_routes(self.streams.routes())
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.config.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the port the OS chose for port 0
        self._rematcher = asyncio.create_task(self._rematch_loop())
        self.streams.start()
        return self.url

    async def stop(self) -> None:
        await self.streams.stop()
        if self._rematcher:
            self._rematcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rematcher
        if self._runner:
            await self._runner.cleanup()
        await self.exchange.close()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _rematch_loop(self) -> None:
        # Resting GTC orders fill when the price moves through them, even if nobody asks.
        while True:
            await asyncio.sleep(self.config.rematch_interval_s)
            try:
                await self.engine.rematch()
            except Exception:  # a feed or database hiccup must not stop matching for good
                log.exception("binance_sim: re-matching open orders failed")

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        arrived = time.time_ns() // 1000
        ARRIVED_US.set(arrived)
        if not request.path.startswith("/api/"):
            return await handler(request)
        endpoint = f"{request.method} {request.path}"
        self.stats[endpoint] += 1
        q = request.query
        self.requests.append(
            (arrived, endpoint, q.get("origClientOrderId") or q.get("newClientOrderId") or "")
        )
        rule = self.faults.take(endpoint)
        kind = rule.kind if rule else None
        if rule and kind == "latency":
            await asyncio.sleep(rule.seconds)
        elif rule and kind == "drop":
            _drop(request)
            return web.Response()
        elif rule and kind == "http_5xx":
            return web.Response(
                status=rule.status,
                content_type="text/html",
                text=f"<html><body><h1>{rule.status} injected</h1></body></html>",
            )
        elif rule and kind == "rate_limit":
            return web.json_response(
                {
                    "code": -1003,
                    "msg": "Too much request weight used; current limit is 6000 "
                    "request weight per 1 MINUTE. Please use WebSocket Streams for live updates "
                    "to avoid polling the API.",
                },
                status=429,
                headers={"Retry-After": str(math.ceil(rule.seconds))},
            )
        try:
            response = await handler(request)
        except BinanceError as err:
            response = web.json_response({"code": err.code, "msg": err.msg}, status=err.status)
        if rule and kind == "accept_then_drop":
            _drop(request)
        elif rule and kind == "accept_then_hang":
            await asyncio.sleep(rule.seconds)
        return response


def _drop(request: web.Request) -> None:
    """Close the connection without a response (the client sees a disconnect)."""
    if request.transport is not None:
        request.transport.abort()
