"""The admin API under ``/_sim/`` (JSON): faults, counters, orders, prices, balances, how
soon queries see a fresh order (lags, duplicate client ids), and the WebSocket streams.

Decimals travel as strings. ``SimControl`` (``control.py``) is the client of these routes.
"""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from trader.binance_sim import shapes
from trader.binance_sim.consistency import checked_lag
from trader.binance_sim.errors import BinanceError
from trader.binance_sim.faults import FaultRule
from trader.exchange.replay import ReplayFeed

if TYPE_CHECKING:
    from trader.binance_sim.server import SimServer


def _bad(msg: str) -> web.Response:
    return web.json_response({"error": msg}, status=400)


def routes(srv: SimServer) -> list[web.RouteDef]:
    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"requests": dict(srv.stats), "total": sum(srv.stats.values())})

    async def stats_reset(_: web.Request) -> web.Response:
        srv.stats.clear()
        return web.json_response({})

    async def faults_get(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "armed": [r.model_dump() for r in srv.faults.armed()],
                "fired": [list(f) for f in srv.faults.fired],
            }
        )

    async def faults_add(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            rules = [
                FaultRule.model_validate(r) for r in (body if isinstance(body, list) else [body])
            ]
        except ValidationError as exc:
            return _bad(str(exc))
        for rule in rules:
            srv.faults.add(rule)
        return await faults_get(request)

    async def faults_clear(_: web.Request) -> web.Response:
        srv.faults.clear()
        return web.json_response({})

    async def orders(_: web.Request) -> web.Response:
        await srv.engine.rematch()
        return web.json_response([_order(srv, o) for o in srv.engine.orders()])

    async def price(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            event = srv.set_price(str(body["symbol"]), Decimal(str(body["price"])))
        except (KeyError, InvalidOperation, TypeError, BinanceError) as exc:
            return _bad(f"price: {exc!r}")
        return web.json_response(event)

    async def events(_: web.Request) -> web.Response:
        return web.json_response({"prices": srv.price_events})

    async def balances(_: web.Request) -> web.Response:
        out = await srv.engine.free_balances()
        return web.json_response(
            {
                a: {"free": str(f), "locked": str(lk), "total": str(f + lk)}
                for a, (f, lk) in out.items()
            }
        )

    async def balances_set(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            for asset, amount in dict(body).items():
                srv.exchange.set_balance(str(asset), Decimal(str(amount)))
        except (InvalidOperation, TypeError, ValueError) as exc:
            return _bad(f"balances: {exc!r}")
        return await balances(request)

    async def clock(_: web.Request) -> web.Response:
        now = srv.api.clock()  # the clock every endpoint answers with
        replay_ms = srv.feed.replay_ms(now) if isinstance(srv.feed, ReplayFeed) else None
        return web.json_response({"server_ms": now, "replay_ms": replay_ms})

    def consistency_now() -> dict[str, Any]:
        c = srv.engine.consistency
        return {
            "lookup_lag_s": c.lookup_lag_s,
            "list_lag_s": c.list_lag_s,
            "duplicate_client_ids": "while_open"
            if srv.exchange.reuse_final_client_ids
            else "always",
        }

    async def consistency(_: web.Request) -> web.Response:
        return web.json_response(consistency_now())

    async def consistency_set(request: web.Request) -> web.Response:
        body = await request.json()
        if not isinstance(body, dict):
            return _bad("consistency: a JSON object of settings")
        c = srv.engine.consistency
        try:  # all checked before any is applied
            lags = {
                k: checked_lag(k, body.pop(k)) for k in ("lookup_lag_s", "list_lag_s") if k in body
            }
            duplicates = body.pop("duplicate_client_ids", None)
            if duplicates not in (None, "while_open", "always"):
                raise ValueError(f"duplicate_client_ids: while_open or always, got {duplicates!r}")
            if body:
                raise ValueError(f"unknown settings {sorted(body)}")
        except ValueError as exc:
            return _bad(str(exc))
        c.lookup_lag_s = lags.get("lookup_lag_s", c.lookup_lag_s)
        c.list_lag_s = lags.get("list_lag_s", c.list_lag_s)
        if duplicates is not None:
            srv.exchange.reuse_final_client_ids = duplicates == "while_open"
        return web.json_response(consistency_now())

    def stream_symbol(body: dict[str, Any]) -> str | None:
        raw = body.get("symbol")
        return None if raw is None else srv.engine.symbol(str(raw))

    async def streams(_: web.Request) -> web.Response:
        st = srv.streams
        now = time.monotonic()
        return web.json_response(
            {
                "connections": [c.info() for c in st.conns.values()],
                "connects": st.connects,
                "frames_sent": st.frames_sent,
                "stalled": [k for k, until in st.faults.stall_until.items() if until > now],
                "delay_ms": {str(k): v * 1000 for k, v in st.faults.delay_s.items()},
                "refusing": st.faults.refuse_until > now,
            }
        )

    async def stream_fault(request: web.Request) -> web.Response:
        body = await request.json()
        action = request.match_info["action"]
        try:
            if not isinstance(body, dict):
                raise ValueError("a JSON object")
            symbol = stream_symbol(body)
            if action == "disconnect":
                refuse = float(body.get("refuse_seconds", 0))
                return web.json_response(
                    {"dropped": srv.streams.disconnect(symbol, refuse_s=refuse)}
                )
            if action == "stall":
                srv.streams.stall(float(body["seconds"]), symbol)
            elif action == "delay":
                srv.streams.delay(float(body["ms"]), symbol)
            else:
                return _bad(f"unknown stream fault {action!r}")
        except (KeyError, TypeError, ValueError, BinanceError) as exc:
            return _bad(f"streams/{action}: {exc!r}")
        return await streams(request)

    async def stream_faults_clear(_: web.Request) -> web.Response:
        srv.streams.faults.clear()
        return web.json_response({})

    s = "/_sim/"
    return [
        web.get(s + "streams", streams),
        web.post(s + "streams/{action}", stream_fault),
        web.delete(s + "streams/faults", stream_faults_clear),
        web.get(s + "stats", stats),
        web.post(s + "stats/reset", stats_reset),
        web.get(s + "faults", faults_get),
        web.post(s + "faults", faults_add),
        web.delete(s + "faults", faults_clear),
        web.get(s + "orders", orders),
        web.post(s + "price", price),
        web.get(s + "events", events),
        web.get(s + "balances", balances),
        web.post(s + "balances", balances_set),
        web.get(s + "clock", clock),
        web.get(s + "consistency", consistency),
        web.post(s + "consistency", consistency_set),
    ]


def _order(srv: SimServer, o: Any) -> dict[str, Any]:
    return {
        "client_order_id": o.client_order_id,
        "order_id": int(o.id),
        "symbol": o.symbol,
        "side": o.side.value,
        "type": o.type.value,
        "time_in_force": o.time_in_force.value,
        "status": shapes.status(o),
        "amount": str(o.amount),
        "filled": str(o.filled),
        "price": None if o.price is None else str(o.price),
        "average": None if o.average is None else str(o.average),
        "fee": str(o.fee),
        "fee_base": str(o.fee_base),
        "accepted_ms": o.ts_ms,
        "arrived_us": srv.api.arrivals.get(o.id),
    }
