"""JSON rendering in Binance's exact shapes (see ``shared/data/binance_http/*.json``).

Every price and amount is a string rendered from a ``Decimal``, with at least Binance's 8
decimals (more only if a value needs them, so nothing is ever rounded away).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from trader.core.market import Candle, MarketInfo, Order, OrderSide, OrderStatus, OrderType
from trader.core.market import TimeInForce as Tif
from trader.exchange.paper_store import PaperFill

_EIGHT = Decimal("1e-8")
MAX_PRICE, MAX_QTY, MAX_NOTIONAL = Decimal(1_000_000), Decimal(9_000_000), Decimal(9_000_000)
"""The filters' maximums, as exchangeInfo advertises them and the engine enforces them."""
Json = dict[str, Any]


def num(value: Decimal | int) -> str:
    """``Decimal('5.3E-5')`` -> ``'0.00005300'``; never scientific notation."""
    d = Decimal(value)
    if d == d.quantize(_EIGHT):
        return f"{d.quantize(_EIGHT):f}"
    return f"{d.normalize():f}"


def market_id(symbol: str) -> str:
    """``BTC/USDT`` -> ``BTCUSDT``."""
    return symbol.replace("/", "")


def symbol_info(m: MarketInfo) -> Json:
    """One ``exchangeInfo`` symbol: what ccxt's ``parse_market`` reads for precision and limits
    (tickSize, stepSize, minQty, minNotional) plus the rest of Binance's fields."""
    return {
        "symbol": market_id(m.symbol),
        "status": "TRADING",
        "baseAsset": m.base,
        "baseAssetPrecision": 8,
        "quoteAsset": m.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "opoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "amendAllowed": False,
        "pegInstructionsAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": num(m.price_tick),
                "maxPrice": num(MAX_PRICE),
                "tickSize": num(m.price_tick),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": num(m.min_amount or m.amount_step),
                "maxQty": num(MAX_QTY),
                "stepSize": num(m.amount_step),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": num(m.min_cost),
                "applyMinToMarket": True,
                "maxNotional": num(MAX_NOTIONAL),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }


def exchange_info(markets: list[MarketInfo], server_time: int) -> Json:
    return {
        "timezone": "UTC",
        "serverTime": server_time,
        "rateLimits": [],
        "exchangeFilters": [],
        "symbols": [symbol_info(m) for m in markets],
        "sors": [],
    }


def status(order: Order) -> str:
    if order.status is OrderStatus.OPEN:
        return "PARTIALLY_FILLED" if order.filled > 0 else "NEW"
    if order.status is OrderStatus.CLOSED:
        return "FILLED"
    if order.status is OrderStatus.REJECTED:
        return "REJECTED"
    # The paper engine says "canceled" for both; Binance says EXPIRED for what IOC/market
    # could not fill and CANCELED for a resting order someone cancelled.
    if order.type is OrderType.MARKET or order.time_in_force is Tif.IOC:
        return "EXPIRED"
    return "CANCELED"


def _core(o: Order, fills: list[PaperFill]) -> Json:
    """``fills``: all of the order's; its quote quantity is their exact sum (the order's
    ``cost``, average x filled, carries the rounding of the average)."""
    return {
        "symbol": market_id(o.symbol),
        "orderId": int(o.id),
        "orderListId": -1,
        "clientOrderId": o.client_order_id,
        "price": num(o.price if o.price is not None else Decimal(0)),
        "origQty": num(o.amount),
        "executedQty": num(o.filled),
        "cummulativeQuoteQty": num(sum((f.price * f.amount for f in fills), Decimal(0))),
        "status": status(o),
        "timeInForce": o.time_in_force.value,
        "type": o.type.value.upper(),
        "side": o.side.value.upper(),
    }


def order(o: Order, fills: list[PaperFill]) -> Json:
    """``GET /api/v3/order``, ``openOrders``, ``allOrders`` entries; ``updateTime`` is the
    last fill's time, or the order's."""
    return {
        **_core(o, fills),
        "stopPrice": num(0),
        "icebergQty": num(0),
        "time": o.ts_ms,
        "updateTime": max([o.ts_ms, *(f.ts_ms for f in fills)]),
        "isWorking": o.status is OrderStatus.OPEN,
        "workingTime": o.ts_ms,
        "origQuoteOrderQty": num(0),
        "selfTradePreventionMode": "NONE",
    }


def new_order(o: Order, fills: list[PaperFill], resp_type: str) -> Json:
    """``POST /api/v3/order`` in ``ACK``, ``RESULT`` or ``FULL`` form."""
    if resp_type == "ACK":
        return {
            "symbol": market_id(o.symbol),
            "orderId": int(o.id),
            "orderListId": -1,
            "clientOrderId": o.client_order_id,
            "transactTime": o.ts_ms,
        }
    core = _core(o, fills)
    out = {k: core[k] for k in ("symbol", "orderId", "orderListId", "clientOrderId")}
    out["transactTime"] = o.ts_ms
    out.update({k: v for k, v in core.items() if k not in out})
    out.update(
        {"origQuoteOrderQty": num(0), "workingTime": o.ts_ms, "selfTradePreventionMode": "NONE"}
    )
    if resp_type == "FULL":
        out["fills"] = [
            {
                "price": num(f.price),
                "qty": num(f.amount),
                "commission": num(f.fee),
                "commissionAsset": f.fee_currency,
                "tradeId": f.id,
            }
            for f in fills
        ]
    return out


def cancel(o: Order, fills: list[PaperFill], *, cancel_client_id: str, now: int) -> Json:
    core = _core(o, fills)
    return {
        "symbol": core["symbol"],
        "origClientOrderId": o.client_order_id,
        "orderId": core["orderId"],
        "orderListId": -1,
        "clientOrderId": cancel_client_id,
        "transactTime": now,
        "price": core["price"],
        "origQty": core["origQty"],
        "executedQty": core["executedQty"],
        "origQuoteOrderQty": num(0),
        "cummulativeQuoteQty": core["cummulativeQuoteQty"],
        "status": core["status"],
        "timeInForce": core["timeInForce"],
        "type": core["type"],
        "side": core["side"],
        "selfTradePreventionMode": "NONE",
    }


def trade(f: PaperFill) -> Json:
    """``GET /api/v3/myTrades`` entry: the taker side of one fill."""
    return {
        "symbol": market_id(f.symbol),
        "id": f.id,
        "orderId": int(f.order_id),
        "orderListId": -1,
        "price": num(f.price),
        "qty": num(f.amount),
        "quoteQty": num(f.price * f.amount),
        "commission": num(f.fee),
        "commissionAsset": f.fee_currency,
        "time": f.ts_ms,
        "isBuyer": f.side is OrderSide.BUY,
        "isMaker": False,
        "isBestMatch": True,
    }


def kline(c: Candle, interval_ms: int) -> list[Any]:
    volume = c.volume
    return [
        c.ts_ms,
        num(c.open),
        num(c.high),
        num(c.low),
        num(c.close),
        num(volume),
        c.ts_ms + interval_ms - 1,
        num((volume * c.close).quantize(_EIGHT)),
        0,
        num(0),
        num(0),
        "0",
    ]


def ticker_24hr(
    symbol: str,
    *,
    bid: tuple[Decimal, Decimal],
    ask: tuple[Decimal, Decimal],
    last: Decimal,
    open_: Decimal,
    quote_volume: Decimal,
    now: int,
) -> Json:
    """``bid``/``ask``: (price, quantity) of the best level."""
    change = last - open_
    volume = quote_volume / last if last else Decimal(0)
    return {
        "symbol": market_id(symbol),
        "priceChange": num(change),
        "priceChangePercent": f"{(change / open_ * 100 if open_ else Decimal(0)):.3f}",
        "weightedAvgPrice": num((open_ + last) / 2),
        "prevClosePrice": num(open_),
        "lastPrice": num(last),
        "lastQty": num(0),
        "bidPrice": num(bid[0]),
        "bidQty": num(bid[1]),
        "askPrice": num(ask[0]),
        "askQty": num(ask[1]),
        "openPrice": num(open_),
        "highPrice": num(max(open_, last)),
        "lowPrice": num(min(open_, last)),
        "volume": num(volume.quantize(_EIGHT)),
        "quoteVolume": num(quote_volume),
        "openTime": now - 86_400_000,
        "closeTime": now,
        "firstId": 0,
        "lastId": 0,
        "count": 0,
    }


def book_ticker(symbol: str, bid: tuple[Decimal, Decimal], ask: tuple[Decimal, Decimal]) -> Json:
    return {
        "symbol": market_id(symbol),
        "bidPrice": num(bid[0]),
        "bidQty": num(bid[1]),
        "askPrice": num(ask[0]),
        "askQty": num(ask[1]),
    }
