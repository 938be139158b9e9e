"""Our order by client id in the symbol's open and recent order lists.

Binance's order query can miss a fresh order far longer than its lists do, so wherever
"not found" must prove an order absent (the order activity's retry, ERROR's reconcile, the
legacy engine's), the lists are asked too, through this one function.
"""

from __future__ import annotations

from collections.abc import Iterable

from trader.core.consistency import Seen, seen_in_lists
from trader.core.market import Order, OrderSide
from trader.exchange.port import Exchange


async def find_listed(
    exchange: Exchange,
    symbol: str,
    client_order_id: str,
    *,
    sides: Iterable[OrderSide],
    since_ms: int,
    recent: bool = True,
) -> tuple[Seen, Order | None, str]:
    """``(FOUND, order, source)`` when the open orders (or, with ``recent``, the orders and
    trades since ``since_ms``: the costly source) list it; else ``UNATTRIBUTED`` when a
    trade on one of ``sides`` whose order cannot be told yet may be it, or ``ABSENT``."""
    sides = tuple(sides)
    seen = Seen.ABSENT
    for source in ("open orders", "recent orders") if recent else ("open orders",):
        orders = (
            await exchange.fetch_open_orders(symbol)
            if source == "open orders"
            else await exchange.fetch_recent_orders(symbol, since_ms=since_ms)
        )
        for side in sides:
            found, order = seen_in_lists(client_order_id, side, orders)
            if order is not None:
                return Seen.FOUND, order, source
            if found is Seen.UNATTRIBUTED:
                seen = Seen.UNATTRIBUTED
    return seen, None, ""
