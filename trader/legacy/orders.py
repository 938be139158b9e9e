"""The legacy engine's exchange calls: retried like the workflows' activities, and orders
placed exactly once in effect (looked up by client order id before any create).

Without Temporal there is no retry policy to lean on: ``retrying`` is the one place that
retries (FSM_MAX_RETRIES attempts of a retryable error, 1 s doubling up to
FSM_BACKOFF_BASE_SECONDS, as ``workflows/base.py``'s ``_exchange_retry``); whatever is left
fails the phase into ERROR, which backs off and reconciles.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TypeVar

from trader.core.consistency import SINCE_SLACK_S, Seen
from trader.core.errors import (
    DuplicateClientOrderId,
    OrderNotFound,
    OrderStatusUnknown,
    RetryableExchangeError,
)
from trader.core.market import Order, OrderRequest, OrderSide, OrderType
from trader.core.params import TraderParams
from trader.core.sizing import order_limit_price
from trader.exchange.order_lists import find_listed
from trader.exchange.port import Exchange
from trader.hub import MarketHub

T = TypeVar("T")


async def retrying(params: TraderParams, call: Callable[[], Awaitable[T]]) -> T:
    """``call`` until it succeeds, a non-retryable error, or FSM_MAX_RETRIES attempts."""
    delay = 1.0
    for attempt in range(1, params.fsm_max_retries + 1):
        try:
            return await call()
        except RetryableExchangeError as exc:
            if attempt >= params.fsm_max_retries:
                raise
            await asyncio.sleep(max(delay, exc.retry_after or 0.0))
            delay = min(delay * 2, max(1.0, params.fsm_backoff_base_seconds))
    raise AssertionError("unreachable")  # the loop returns or raises


async def find_order(exchange: Exchange, symbol: str, client_order_id: str) -> Order | None:
    try:
        return await exchange.fetch_order(symbol, client_order_id)
    except OrderNotFound:
        return None


async def find_confirmed(
    exchange: Exchange,
    params: TraderParams,
    symbol: str,
    client_order_id: str,
    placed_ts: float,
    *,
    sent_ts: float | None = None,
) -> Order | None:
    """The order, or None once its absence is confirmed: not found is no proof until the
    consistency window since ``sent_ts`` (the last moment it may have been sent; default
    ``placed_ts``) has passed (a fresh order can be missed), and then only if the symbol's
    open and recent orders (from ``placed_ts``, when it was first sent) miss it too
    (Binance's order query can lag far longer than its lists, as
    ``activities/order_window.py`` says).

    Raises:
        OrderStatusUnknown: a trade on the order's side whose order cannot be told yet.
    """
    found = await find_order(exchange, symbol, client_order_id)
    wait = max(placed_ts, sent_ts or 0.0) + params.order_consistency_window_seconds - time.time()
    if found is None and wait > 0:
        await asyncio.sleep(wait)
        found = await find_order(exchange, symbol, client_order_id)
    return found or await _listed(exchange, symbol, client_order_id, placed_ts)


async def _listed(
    exchange: Exchange, symbol: str, client_order_id: str, placed_ts: float
) -> Order | None:
    # The side is not known here: any unattributed trade may be ours.
    since_ms = int((placed_ts - SINCE_SLACK_S) * 1000)
    seen, order, _ = await find_listed(
        exchange, symbol, client_order_id, sides=OrderSide, since_ms=since_ms
    )
    if seen is Seen.UNATTRIBUTED:
        raise OrderStatusUnknown(
            f"order {client_order_id}: an unattributed trade on {symbol} may be it; not created"
        )
    return order


async def place_once(
    exchange: Exchange,
    hub: MarketHub,
    params: TraderParams,
    *,
    request: OrderRequest,
    limit_offset_bps: Decimal | None,
    placed_ts: float,
    sent_ts: float | None = None,
    resumed: bool,
) -> Order:
    """The order of ``request.client_order_id``: found at the exchange if it is there,
    else created (a limit priced from a fresh ticker).

    ``resumed``: the order may have been sent before (a restart or a retry after an unknown
    outcome): absence counts only once the consistency window since ``sent_ts`` (the last
    moment an earlier attempt may have sent it; default ``placed_ts``, the decision) passed.
    """
    if resumed:
        found = await find_confirmed(
            exchange, params, request.symbol, request.client_order_id, placed_ts, sent_ts=sent_ts
        )
    else:
        found = await find_order(exchange, request.symbol, request.client_order_id)
    if found is not None:
        return found
    if request.type is OrderType.LIMIT and limit_offset_bps is not None:
        market = (await exchange.load_markets())[request.symbol]
        ticker = await hub.order_ticker(request.symbol)
        price = order_limit_price(request.side, ticker, limit_offset_bps, market.price_tick)
        request = request.model_copy(update={"price": price})
    try:
        return await exchange.create_order(request)
    except DuplicateClientOrderId:  # another attempt's order with this id is open
        return await exchange.fetch_order(request.symbol, request.client_order_id)
