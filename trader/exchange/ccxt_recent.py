"""A symbol's recent orders through ccxt: the order list and the trade list since T.

What the order activity asks while it cannot yet tell whether an earlier create reached the
exchange (``activities/order_window.py``): Binance's order query can miss a fresh order for
a while, and its lists are served from stores of their own. Each listed order's fees come
from the trades listed with it (no request per order). A trade whose order the order list
does not have yet is read by its order id; when that misses too, it is reported as an order
known only by its trades (empty ``client_order_id``): whose it is cannot be told yet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

from trader.core.errors import OrderNotFound
from trader.core.market import (
    MarketInfo,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from trader.exchange import ccxt_convert as cv
from trader.exchange.ccxt_fees import OrderFees

Raw = Mapping[str, Any]


async def recent_orders(
    client: Any,
    *,
    call: Callable[[Awaitable[Any]], Awaitable[Any]],
    fees: OrderFees,
    market: MarketInfo,
    since_ms: int,
    ours: Callable[[str], str],
    by_id: Callable[[str], Awaitable[Order]],
) -> list[Order]:
    """Orders of ``market`` placed at or after ``since_ms``, oldest first.

    ``ours`` maps a client id as the exchange holds it to ours; ``by_id`` reads an order by
    its exchange id (raising ``OrderNotFound`` when the exchange does not show it yet).
    """
    # Orders first, trades second: an order placed in between then shows up as a trade of an
    # unlisted order (read by id below), never as an order whose trades are missing.
    raws = await call(client.fetch_orders(market.symbol, since_ms))
    trades = await call(client.fetch_my_trades(market.symbol, since_ms))
    trades_of: dict[str, list[Raw]] = {}
    for t in trades:
        trades_of.setdefault(str(t.get("order") or ""), []).append(t)
    out = []
    for raw in raws:
        order_id = str(raw.get("id") or "")
        fee, fee_base = await fees.of(raw, market, trades=trades_of.get(order_id, []))
        out.append(
            cv.order(
                raw,
                market,
                fee=fee,
                fee_base=fee_base,
                client_order_id=ours(str(raw.get("clientOrderId") or "")),
            )
        )
    listed = {o.id for o in out}
    for order_id, its_trades in trades_of.items():
        if order_id in listed or not order_id:
            continue
        try:
            out.append(await by_id(order_id))
        except OrderNotFound:
            out.append(_known_by_trades(order_id, its_trades, market))
    return sorted(out, key=lambda o: (o.ts_ms, o.id))


def _known_by_trades(order_id: str, trades: list[Raw], m: MarketInfo) -> Order:
    """An order seen only through its trades: what filled, at what price, whose unknown."""
    filled = sum((cv.exact(t["amount"]) for t in trades), Decimal(0))
    cost = sum((cv.exact(t["amount"]) * cv.exact(t["price"]) for t in trades), Decimal(0))
    side = OrderSide(str(trades[0].get("side") or "buy").lower())
    return Order(
        id=order_id,
        client_order_id="",
        symbol=m.symbol,
        side=side,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.IOC,
        amount=filled,
        filled=filled,
        average=cost / filled if filled else None,
        status=OrderStatus.CLOSED,
        ts_ms=min(int(t.get("timestamp") or 0) for t in trades),
    )
