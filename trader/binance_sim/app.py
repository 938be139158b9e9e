"""The Binance spot REST endpoints ccxt uses (``/api/v3/...``), as aiohttp routes."""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from trader.binance_sim import auth, shapes
from trader.binance_sim import errors as e
from trader.binance_sim.config import SimConfig
from trader.binance_sim.engine import SimEngine, int_param
from trader.core.market import Candle, OrderSide

_INTERVALS = {"1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120,
              "4h": 240, "6h": 360, "8h": 480, "12h": 720, "1d": 1440}
_DAY_MS = 86_400_000
ARRIVED_US: contextvars.ContextVar[int] = contextvars.ContextVar("arrived_us", default=0)
"""Server time (µs) the current request arrived, before any injected fault (set by the
server's middleware)."""


def _json(data: Any) -> web.Response:
    return web.json_response(data, dumps=json.dumps)


class BinanceApi:
    """Routes over one ``SimEngine``; ``arrivals`` records when each client order id came."""

    def __init__(self, engine: SimEngine, config: SimConfig, clock: Callable[[], int]) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.arrivals: dict[str, int] = {}
        """client order id -> server time (µs) the POST arrived, before any injected fault."""

    def routes(self) -> list[web.RouteDef]:
        get, a = web.get, "/api/v3/"
        return [
            get(a + "ping", self.ping), get(a + "time", self.time),
            get(a + "exchangeInfo", self.exchange_info),
            get(a + "ticker/24hr", self.ticker_24hr), get(a + "ticker/bookTicker", self.book),
            get(a + "ticker/price", self.price), get(a + "avgPrice", self.avg_price),
            get(a + "depth", self.depth), get(a + "klines", self.klines),
            web.post(a + "order", self.new_order), get(a + "order", self.get_order),
            web.delete(a + "order", self.cancel_order), get(a + "openOrders", self.open_orders),
            get(a + "allOrders", self.all_orders), get(a + "account", self.account),
            get(a + "myTrades", self.my_trades),
        ]

    async def _signed(self, request: web.Request) -> dict[str, str]:
        body = await request.text() if request.can_read_body else ""
        params = dict(request.query)
        params.update(parse_qsl(body, keep_blank_values=True))
        auth.check(headers=request.headers, query=request.rel_url.raw_query_string, body=body,
                   params=params, api_key=self.config.api_key, secret=self.config.api_secret,
                   now_ms=self.clock(), default_recv_window=self.config.recv_window_ms)
        return params

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
        return _json({})

    async def time(self, _: web.Request) -> web.Response:
        return _json({"serverTime": self.clock()})

    async def exchange_info(self, request: web.Request) -> web.Response:
        symbols = (self._symbols(request)[0] if "symbol" in request.query
                   or "symbols" in request.query else self.engine.feed.symbols)
        markets = [self.engine.feed.market(s) for s in symbols]
        return _json(shapes.exchange_info(markets, self.clock()))

    async def ticker_24hr(self, request: web.Request) -> web.Response:
        symbols, single = self._symbols(request)
        now, feed = self.clock(), self.engine.feed
        out = []
        for s in symbols:
            bid, ask = self._touch(s)
            out.append(shapes.ticker_24hr(s, bid=bid, ask=ask, last=feed.mid(s, now),
                                          open_=feed.mid(s, now - _DAY_MS),
                                          quote_volume=feed.quote_volume(s, now), now=now))
        return _json(out[0] if single else out)

    async def book(self, request: web.Request) -> web.Response:
        symbols, single = self._symbols(request)
        out = [shapes.book_ticker(s, *self._touch(s)) for s in symbols]
        return _json(out[0] if single else out)

    async def price(self, request: web.Request) -> web.Response:
        symbols, single = self._symbols(request)
        now = self.clock()
        out = [{"symbol": shapes.market_id(s), "price": shapes.num(self.engine.feed.mid(s, now))}
               for s in symbols]
        return _json(out[0] if single else out)

    async def avg_price(self, request: web.Request) -> web.Response:
        symbol = self.engine.symbol(request.query.get("symbol"))
        now = self.clock()
        return _json({"mins": 5, "price": shapes.num(self.engine.feed.mid(symbol, now)),
                      "closeTime": now})

    async def depth(self, request: web.Request) -> web.Response:
        symbol = self.engine.symbol(request.query.get("symbol"))
        limit = int_param(request.query, "limit") or 100
        ex = self.engine.exchange
        bids, asks = ex.book_levels(symbol, OrderSide.SELL), ex.book_levels(symbol, OrderSide.BUY)
        return _json({"lastUpdateId": self.clock(),
                      "bids": [[shapes.num(p), shapes.num(q)] for p, q in bids[:limit]],
                      "asks": [[shapes.num(p), shapes.num(q)] for p, q in asks[:limit]]})

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
            return _json([])
        ones = self.engine.feed.candles(symbol, since_ms=start, until_ms=end,
                                        limit=limit * minutes)
        return _json([shapes.kline(c, step) for c in _aggregate(ones, step)[:limit]])

    # --- orders and account --------------------------------------------------------------
    async def new_order(self, request: web.Request) -> web.Response:
        arrived = ARRIVED_US.get()
        p = await self._signed(request)
        if p.get("newClientOrderId"):
            self.arrivals.setdefault(p["newClientOrderId"], arrived)
        order, fills = await self.engine.place(p)
        return _json(shapes.new_order(order, fills, p.get("newOrderRespType") or "FULL"))

    async def get_order(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        order = await self.engine.find(self.engine.symbol(p.get("symbol")), p)
        return _json(shapes.order(order, update_time=self.engine.update_time(order)))

    async def cancel_order(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        order = await self.engine.cancel(self.engine.symbol(p.get("symbol")), p)
        cancel_id = p.get("newClientOrderId") or f"cancel{order.id}"
        return _json(shapes.cancel(order, cancel_client_id=cancel_id, now=self.clock()))

    async def open_orders(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = self.engine.symbol(p["symbol"]) if p.get("symbol") else None
        orders = [o for o in await self.engine.rematch() if symbol in (None, o.symbol)]
        return _json([shapes.order(o, update_time=self.engine.update_time(o)) for o in orders])

    async def all_orders(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = self.engine.symbol(p.get("symbol"))
        await self.engine.rematch()
        from_id, start, end = (int_param(p, k) for k in ("orderId", "startTime", "endTime"))
        orders = [o for o in self.engine.orders(symbol)
                  if (from_id is None or int(o.id) >= from_id)
                  and (start is None or o.ts_ms >= start) and (end is None or o.ts_ms <= end)]
        limit = min(int_param(p, "limit") or 500, 1000)
        orders = orders[:limit] if from_id is not None or start is not None else orders[-limit:]
        return _json([shapes.order(o, update_time=self.engine.update_time(o)) for o in orders])

    async def account(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        await self.engine.rematch()
        rate = shapes.num(self.engine.exchange.fee_rate or Decimal(0))
        balances = [{"asset": a, "free": shapes.num(free), "locked": shapes.num(locked)}
                    for a, (free, locked) in (await self.engine.free_balances()).items()
                    if not (p.get("omitZeroBalances") == "true" and free == locked == 0)]
        bps = int((self.engine.exchange.fee_rate or Decimal(0)) * 10_000)
        return _json({
            "makerCommission": bps, "takerCommission": bps, "buyerCommission": 0,
            "sellerCommission": 0, "commissionRates": {"maker": rate, "taker": rate,
                                                       "buyer": shapes.num(0),
                                                       "seller": shapes.num(0)},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False,
            "updateTime": self.clock(), "accountType": "SPOT", "balances": balances,
            "permissions": ["SPOT"], "uid": 1})

    async def my_trades(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = self.engine.symbol(p.get("symbol"))
        await self.engine.rematch()
        order_id, start, end, from_id = (int_param(p, k) for k in
                                         ("orderId", "startTime", "endTime", "fromId"))
        fills = [f for f in self.engine.fills(symbol)
                 if (order_id is None or int(f.order_id) == order_id)
                 and (start is None or f.ts_ms >= start) and (end is None or f.ts_ms <= end)
                 and (from_id is None or f.id >= from_id)]
        limit = min(int_param(p, "limit") or 500, 1000)
        fills = fills[:limit] if from_id is not None or start is not None else fills[-limit:]
        return _json([shapes.trade(f) for f in fills])


def _aggregate(ones: list[Candle], step: int) -> list[Candle]:
    """One-minute candles merged into ``step``-long ones (open of first, close of last)."""
    if step == 60_000:
        return ones
    out: list[Candle] = []
    for c in ones:
        start = c.ts_ms - c.ts_ms % step
        if out and out[-1].ts_ms == start:
            last = out[-1]
            out[-1] = last.model_copy(update={
                "high": max(last.high, c.high), "low": min(last.low, c.low), "close": c.close,
                "volume": last.volume + c.volume})
        else:
            out.append(c.model_copy(update={"ts_ms": start}))
    return out
