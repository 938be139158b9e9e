"""Binance's public market-data endpoints (``/api/v3/...``): no signature needed."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from trader.binance_sim import errors as e
from trader.binance_sim import shapes
from trader.binance_sim.engine import SimEngine, int_param
from trader.binance_sim.stream_shapes import Snapshot
from trader.core.market import Candle, OrderSide

_INTERVALS = {
    "1m": 1,
    "3m": 3,
    "5m": 5,
    "15m": 15,
    "30m": 30,
    "1h": 60,
    "2h": 120,
    "4h": 240,
    "6h": 360,
    "8h": 480,
    "12h": 720,
    "1d": 1440,
}
_DAY_MS = 86_400_000


def json_response(data: Any) -> web.Response:
    return web.json_response(data, dumps=json.dumps)


class MarketApi:
    """Market data over one ``SimEngine`` (its feed and its simulated book)."""

    def __init__(self, engine: SimEngine, clock: Callable[[], int]) -> None:
        self.engine = engine
        self.clock = clock

    def routes(self) -> list[web.RouteDef]:
        get, a = web.get, "/api/v3/"
        return [
            get(a + "ping", self.ping),
            get(a + "time", self.time),
            get(a + "exchangeInfo", self.exchange_info),
            get(a + "ticker/24hr", self.ticker_24hr),
            get(a + "ticker/bookTicker", self.book),
            get(a + "ticker/price", self.price),
            get(a + "avgPrice", self.avg_price),
            get(a + "depth", self.depth),
            get(a + "klines", self.klines),
        ]

    def _symbols(self, request: web.Request) -> tuple[list[str], bool]:
        """(unified symbols, single?) from ``symbol=``, ``symbols=[..]`` or nothing (all)."""
        q = request.query
        if q.get("symbol"):
            return [self.engine.symbol(q["symbol"])], True
        if q.get("symbols"):
            try:
                ids = json.loads(q["symbols"])
            except ValueError:
                raise e.bad_param("symbols") from None
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise e.bad_param("symbols")
            return [self.engine.symbol(i) for i in ids], False
        return self.engine.feed.symbols, False

    def _touch(self, symbol: str) -> tuple[tuple[Decimal, Decimal], tuple[Decimal, Decimal]]:
        ex = self.engine.exchange
        bids, asks = ex.book_levels(symbol, OrderSide.SELL), ex.book_levels(symbol, OrderSide.BUY)
        return bids[0], asks[0]

    # --- market data -------------------------------------------------------------------
    async def ping(self, _: web.Request) -> web.Response:
        return json_response({})

    async def time(self, _: web.Request) -> web.Response:
        return json_response({"serverTime": self.clock()})

    async def exchange_info(self, request: web.Request) -> web.Response:
        symbols = (
            self._symbols(request)[0]
            if "symbol" in request.query or "symbols" in request.query
            else self.engine.feed.symbols
        )
        markets = [self.engine.feed.market(s) for s in symbols]
        return json_response(shapes.exchange_info(markets, self.clock()))

    def snapshot(self, symbol: str) -> Snapshot:
        """The symbol's touch and 24 h figures now (REST tickers and the streams)."""
        now, feed = self.clock(), self.engine.feed
        bid, ask = self._touch(symbol)
        return Snapshot(
            symbol=symbol,
            bid=bid,
            ask=ask,
            last=feed.mid(symbol, now),
            open_=feed.mid(symbol, now - _DAY_MS),
            quote_volume=feed.quote_volume(symbol, now),
            now_ms=now,
        )

    async def ticker_24hr(self, request: web.Request) -> web.Response:
        symbols, single = self._symbols(request)
        out = []
        for s in map(self.snapshot, symbols):
            out.append(
                shapes.ticker_24hr(
                    s.symbol,
                    bid=s.bid,
                    ask=s.ask,
                    last=s.last,
                    open_=s.open_,
                    quote_volume=s.quote_volume,
                    now=s.now_ms,
                )
            )
        return json_response(out[0] if single else out)

    async def book(self, request: web.Request) -> web.Response:
        symbols, single = self._symbols(request)
        out = [shapes.book_ticker(s, *self._touch(s)) for s in symbols]
        return json_response(out[0] if single else out)

    async def price(self, request: web.Request) -> web.Response:
        symbols, single = self._symbols(request)
        now = self.clock()
        out = [
            {"symbol": shapes.market_id(s), "price": shapes.num(self.engine.feed.mid(s, now))}
            for s in symbols
        ]
        return json_response(out[0] if single else out)

    async def avg_price(self, request: web.Request) -> web.Response:
        symbol = self.engine.symbol(request.query.get("symbol"))
        now = self.clock()
        return json_response(
            {"mins": 5, "price": shapes.num(self.engine.feed.mid(symbol, now)), "closeTime": now}
        )

    async def depth(self, request: web.Request) -> web.Response:
        symbol = self.engine.symbol(request.query.get("symbol"))
        limit = int_param(request.query, "limit") or 100
        ex = self.engine.exchange
        bids, asks = ex.book_levels(symbol, OrderSide.SELL), ex.book_levels(symbol, OrderSide.BUY)
        return json_response(
            {
                "lastUpdateId": self.clock(),
                "bids": [[shapes.num(p), shapes.num(q)] for p, q in bids[:limit]],
                "asks": [[shapes.num(p), shapes.num(q)] for p, q in asks[:limit]],
            }
        )

    async def klines(self, request: web.Request) -> web.Response:
        q = request.query
        symbol = self.engine.symbol(q.get("symbol"))
        minutes = _INTERVALS.get(q.get("interval", ""))
        if minutes is None:
            raise e.BinanceError(-1120, "Invalid interval.")
        step = minutes * 60_000
        limit = min(int_param(q, "limit") or 500, 1000)
        end = min(int_param(q, "endTime") or self.clock(), self.clock())
        start = int_param(q, "startTime")
        if start is None:  # the latest ``limit`` klines up to ``end``
            start = end - end % step - (limit - 1) * step
        elif start % step:  # Binance: the first kline opening at or after startTime
            start += step - start % step
        end = min(end, start + limit * step - 1)
        if end < start:
            return json_response([])
        ones = self.engine.feed.candles(symbol, since_ms=start, until_ms=end, limit=limit * minutes)
        return json_response([shapes.kline(c, step) for c in _aggregate(ones, step)[:limit]])


def _aggregate(ones: list[Candle], step: int) -> list[Candle]:
    """One-minute candles merged into ``step``-long ones (open of first, close of last)."""
    if step == 60_000:
        return ones
    out: list[Candle] = []
    for c in ones:
        start = c.ts_ms - c.ts_ms % step
        if out and out[-1].ts_ms == start:
            last = out[-1]
            out[-1] = last.model_copy(
                update={
                    "high": max(last.high, c.high),
                    "low": min(last.low, c.low),
                    "close": c.close,
                    "volume": last.volume + c.volume,
                }
            )
        else:
            out.append(c.model_copy(update={"ts_ms": start}))
    return out
