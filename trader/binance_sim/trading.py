"""Binance's signed spot endpoints: orders, open/all orders, account, myTrades."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from decimal import Decimal
from urllib.parse import parse_qsl

from aiohttp import web

from trader.binance_sim import auth, shapes
from trader.binance_sim import errors as e
from trader.binance_sim.config import SimConfig
from trader.binance_sim.engine import SimEngine, int_param
from trader.binance_sim.market import json_response
from trader.core.market import Order

ARRIVED_US: contextvars.ContextVar[int] = contextvars.ContextVar("arrived_us", default=0)
"""Server time (µs) the current request arrived, before any injected fault (set by the
server's middleware)."""


class TradingApi:
    """Signed routes over one ``SimEngine``; ``arrivals`` records when each order came. The
    lists (open/all orders, trades) show what the engine's list lag lets them see."""

    def __init__(self, engine: SimEngine, config: SimConfig, clock: Callable[[], int]) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.arrivals: dict[str, int] = {}
        """order id -> server time (µs) the POST arrived, before any injected fault."""

    def routes(self) -> list[web.RouteDef]:
        get, a = web.get, "/api/v3/"
        return [
            web.post(a + "order", self.new_order),
            get(a + "order", self.get_order),
            web.delete(a + "order", self.cancel_order),
            get(a + "openOrders", self.open_orders),
            web.delete(a + "openOrders", self.cancel_open_orders),
            get(a + "allOrders", self.all_orders),
            get(a + "account", self.account),
            get(a + "myTrades", self.my_trades),
        ]

    async def _signed(self, request: web.Request) -> dict[str, str]:
        body = await request.text() if request.can_read_body else ""
        params = dict(request.query)
        params.update(parse_qsl(body, keep_blank_values=True))
        auth.check(
            headers=request.headers,
            query=request.rel_url.raw_query_string,
            body=body,
            params=params,
            api_key=self.config.api_key,
            secret=self.config.api_secret,
            now_ms=self.clock(),
            default_recv_window=self.config.recv_window_ms,
        )
        return params

    # --- orders and account --------------------------------------------------------------
    async def new_order(self, request: web.Request) -> web.Response:
        arrived = ARRIVED_US.get()
        p = await self._signed(request)
        order, fills = await self.engine.place(p)
        self.arrivals.setdefault(order.id, arrived)
        return json_response(shapes.new_order(order, fills, p.get("newOrderRespType") or "FULL"))

    async def get_order(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        order = await self.engine.find(self.engine.symbol(p.get("symbol")), p)
        return json_response(shapes.order(order, self.engine.fills_of(order)))

    async def cancel_order(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        order = await self.engine.cancel(self.engine.symbol(p.get("symbol")), p)
        cancel_id = p.get("newClientOrderId") or f"cancel{order.id}"
        return json_response(
            shapes.cancel(
                order, self.engine.fills_of(order), cancel_client_id=cancel_id, now=self.clock()
            )
        )

    async def open_orders(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = self.engine.symbol(p["symbol"]) if p.get("symbol") else None
        orders = [o for o in await self.engine.rematch() if symbol in (None, o.symbol)]
        return self._orders(self.engine.listed(orders))

    async def cancel_open_orders(self, request: web.Request) -> web.Response:
        """``DELETE /api/v3/openOrders``: cancel every open order of the symbol."""
        p = await self._signed(request)
        symbol = self.engine.symbol(p.get("symbol"))
        cancelled = [
            await self.engine.exchange.cancel_order(symbol, o.client_order_id, order_id=o.id)
            for o in await self.engine.rematch()
            if o.symbol == symbol
        ]
        if not cancelled:  # Binance answers an empty cancel-all with -2011
            raise e.unknown_order()
        return json_response(
            [
                shapes.cancel(
                    o, self.engine.fills_of(o), cancel_client_id=f"cancel{o.id}", now=self.clock()
                )
                for o in cancelled
            ]
        )

    def _orders(self, orders: list[Order]) -> web.Response:
        return json_response([shapes.order(o, self.engine.fills_of(o)) for o in orders])

    async def all_orders(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = self.engine.symbol(p.get("symbol"))
        await self.engine.rematch()
        from_id, start, end = (int_param(p, k) for k in ("orderId", "startTime", "endTime"))
        orders = [
            o
            for o in self.engine.listed(self.engine.orders(symbol))
            if (from_id is None or int(o.id) >= from_id)
            and (start is None or o.ts_ms >= start)
            and (end is None or o.ts_ms <= end)
        ]
        limit = min(int_param(p, "limit") or 500, 1000)
        orders = orders[:limit] if from_id is not None or start is not None else orders[-limit:]
        return self._orders(orders)

    async def account(self, request: web.Request) -> web.Response:
        p = await self._signed(request)  # free_balances re-matches the resting orders
        rate = shapes.num(self.engine.exchange.fee_rate or Decimal(0))
        balances = [
            {"asset": a, "free": shapes.num(free), "locked": shapes.num(locked)}
            for a, (free, locked) in (await self.engine.free_balances()).items()
            if not (p.get("omitZeroBalances") == "true" and free == locked == 0)
        ]
        bps = int((self.engine.exchange.fee_rate or Decimal(0)) * 10_000)
        return json_response(
            {
                "makerCommission": bps,
                "takerCommission": bps,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {
                    "maker": rate,
                    "taker": rate,
                    "buyer": shapes.num(0),
                    "seller": shapes.num(0),
                },
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": self.clock(),
                "accountType": "SPOT",
                "balances": balances,
                "permissions": ["SPOT"],
                "uid": 1,
            }
        )

    async def my_trades(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = self.engine.symbol(p.get("symbol"))
        await self.engine.rematch()
        order_id, start, end, from_id = (
            int_param(p, k) for k in ("orderId", "startTime", "endTime", "fromId")
        )
        fills = [
            f
            for f in self.engine.listed_fills(symbol)
            if (order_id is None or int(f.order_id) == order_id)
            and (start is None or f.ts_ms >= start)
            and (end is None or f.ts_ms <= end)
            and (from_id is None or f.id >= from_id)
        ]
        limit = min(int_param(p, "limit") or 500, 1000)
        fills = fills[:limit] if from_id is not None or start is not None else fills[-limit:]
        return json_response([shapes.trade(f) for f in fills])
