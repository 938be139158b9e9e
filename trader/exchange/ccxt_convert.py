"""Pure conversions from ccxt's unified structures to the domain's Decimal value types, and
the order checks made before anything is sent.

ccxt hands out numbers as floats, but it computes them from the exchange's decimal strings
and a float's ``repr`` is the shortest string that reads back to it, so ``Decimal(str(x))``
recovers the exchange's value exactly (for up to 15 significant digits, i.e. any price or
amount an exchange sends). No arithmetic is ever done on the floats themselves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from trader.core.errors import InvalidOrder
from trader.core.market import (
    Balance,
    MarketInfo,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    Ticker,
    TimeInForce,
)
from trader.core.sizing import round_down, round_up

log = logging.getLogger(__name__)

# ccxt's precision modes (ccxt.base.decimal_to_precision): what market['precision'] holds.
DECIMAL_PLACES, SIGNIFICANT_DIGITS, TICK_SIZE = 2, 3, 4

_STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.CLOSED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
}


def dec(value: Any, default: Decimal | None = None) -> Decimal | None:
    """A ccxt number (float, int or string) as an exact Decimal; None stays ``default``."""
    if value is None or value == "":
        return default
    return Decimal(str(value))


def exact(value: Any) -> Decimal:
    """A ccxt number that must be present, as an exact Decimal."""
    return Decimal(str(value))


def _step(precision: Any, mode: int) -> Decimal | None:
    value = dec(precision)
    if value is None:
        return None
    if mode == TICK_SIZE:  # the precision value is the step itself
        return value
    if mode == DECIMAL_PLACES:  # number of decimals: 2 -> 0.01
        return Decimal(1).scaleb(-int(value))
    return None  # SIGNIFICANT_DIGITS has no fixed step: such markets are not tradable here


def market_info(market: Mapping[str, Any], precision_mode: int) -> MarketInfo | None:
    """MarketInfo of a spot market, or None when the market cannot be traded here (not spot,
    inactive, or without a fixed price/amount step)."""
    if not market.get("spot") or market.get("active") is False:
        return None
    precision, limits = market.get("precision") or {}, market.get("limits") or {}
    tick = _step(precision.get("price"), precision_mode)
    step = _step(precision.get("amount"), precision_mode)
    if not tick or not step:
        return None
    min_amount = dec((limits.get("amount") or {}).get("min"), Decimal(0)) or Decimal(0)
    min_cost = dec((limits.get("cost") or {}).get("min"), Decimal(0)) or Decimal(0)
    fees = {k: dec(market.get(k)) for k in ("taker", "maker")}
    return MarketInfo(
        symbol=market["symbol"],
        base=market["base"],
        quote=market["quote"],
        price_tick=tick,
        amount_step=step,
        min_amount=max(min_amount, step),
        min_cost=min_cost,
        taker_fee=fees["taker"] if fees["taker"] is not None else Decimal("0.001"),
        maker_fee=fees["maker"] if fees["maker"] is not None else Decimal("0.001"),
    )


def ticker(symbol: str, raw: Mapping[str, Any], ts_ms: int) -> Ticker | None:
    """A domain Ticker; ``ts_ms`` is when we observed it (the hub publishes a new tick per
    observation, and exit rules measure holding time on our clock). None without a price."""
    last = dec(raw.get("last")) or dec(raw.get("close"))
    bid, ask = dec(raw.get("bid")) or last, dec(raw.get("ask")) or last
    if last is None or bid is None or ask is None:
        return None
    volume = dec(raw.get("quoteVolume"), Decimal(0)) or Decimal(0)
    return Ticker(symbol=symbol, ts_ms=ts_ms, bid=bid, ask=ask, last=last, quote_volume=volume)


def fee_items(raw: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> list[tuple[str, Decimal]]:
    """(currency, cost) of an order's fees, or of a list of trades' fees."""
    if isinstance(raw, Mapping):
        items = raw.get("fees") or ([raw["fee"]] if raw.get("fee") else [])
    else:
        items = [f for t in raw for f in (t.get("fees") or ([t["fee"]] if t.get("fee") else []))]
    out = []
    for fee in items:
        cost = dec(fee.get("cost"))
        if cost and fee.get("currency"):
            out.append((str(fee["currency"]), cost))
    return out


def split_fees(
    fees: Iterable[tuple[str, Decimal]],
    *,
    base: str,
    quote: str,
    average: Decimal | None,
    rates: Mapping[str, Decimal],
) -> tuple[Decimal, Decimal]:
    """``(fee, fee_base)`` as ``Order`` wants them: all fees valued in quote, and the part
    withheld in base. A third currency (BNB) is valued at ``rates[currency]`` (its price in
    quote); without a rate it counts 0 and a warning is logged (PnL then omits it)."""
    fee, fee_base = Decimal(0), Decimal(0)
    for currency, cost in fees:
        if currency == quote:
            fee += cost
        elif currency == base:
            fee_base += cost
            fee += cost * (average or Decimal(0))
        elif currency in rates:
            fee += cost * rates[currency]
        else:
            log.warning("fee of %s %s has no price in %s: recorded as 0", cost, currency, quote)
    return fee, fee_base


def average(raw: Mapping[str, Any]) -> Decimal | None:
    """Average fill price: cost / filled when the exchange reports a cost, so ``Order.cost``
    equals what the exchange says was paid; None when nothing filled."""
    filled = dec(raw.get("filled"), Decimal(0)) or Decimal(0)
    cost = dec(raw.get("cost"))
    if filled > 0 and cost:
        return cost / filled
    return None if filled == 0 else dec(raw.get("average"))


def order(
    raw: Mapping[str, Any],
    market: MarketInfo,
    *,
    fee: Decimal,
    fee_base: Decimal,
    client_order_id: str,
) -> Order:
    """A domain Order (``average`` as ``average`` computes it) under ``client_order_id``:
    ours, even where the exchange was sent a shortened form of it."""
    filled = dec(raw.get("filled"), Decimal(0)) or Decimal(0)
    tif = str(raw.get("timeInForce") or "GTC").upper()
    return Order(
        id=str(raw.get("id") or ""),
        client_order_id=client_order_id,
        symbol=market.symbol,
        side=OrderSide(str(raw.get("side") or "buy").lower()),
        type=OrderType.MARKET if raw.get("type") == "market" else OrderType.LIMIT,
        time_in_force=TimeInForce.IOC if tif in ("IOC", "FOK") else TimeInForce.GTC,
        amount=dec(raw.get("amount"), Decimal(0)) or Decimal(0),
        price=dec(raw.get("price")) or None,
        filled=filled,
        average=average(raw),
        fee=fee,
        fee_base=fee_base,
        status=_STATUS.get(str(raw.get("status")), OrderStatus.OPEN),
        ts_ms=int(raw.get("timestamp") or 0),
    )


def checked(
    r: OrderRequest,
    m: MarketInfo,
    *,
    last: Ticker | None,
    sent_id: str,
    id_pattern: re.Pattern[str],
    exchange: str,
) -> tuple[Decimal, Decimal | None]:
    """Amount and price on the market's steps, or InvalidOrder (so nothing is sent) when the
    order is below the market's minimums or the client id does not fit the exchange. A market
    order's value is estimated from ``last`` (the latest ticker seen), when there is one."""
    if not id_pattern.fullmatch(sent_id):
        raise InvalidOrder(
            f"client order id {sent_id!r} does not fit "
            f"{exchange}'s rule {id_pattern.pattern} (not sent)"
        )
    amount = round_down(r.amount, m.amount_step)
    price = None
    if r.type is OrderType.LIMIT:
        if r.price is None or r.price <= 0:
            raise InvalidOrder(f"limit order without a price on {r.symbol} (not sent)")
        # Never worse than asked: buys round down, sells up.
        price = (round_down if r.side is OrderSide.BUY else round_up)(r.price, m.price_tick)
    if amount <= 0 or amount < m.min_amount:
        raise InvalidOrder(
            f"amount {r.amount} of {r.symbol} is below the market minimum "
            f"{m.min_amount} (step {m.amount_step}); not sent"
        )
    ref = price or (last and (last.ask if r.side is OrderSide.BUY else last.bid))
    if ref and m.min_cost and amount * ref < m.min_cost:
        raise InvalidOrder(
            f"order value {amount * ref} {m.quote} of {r.symbol} is below "
            f"the market minimum {m.min_cost} {m.quote}; not sent"
        )
    return amount, price


def balances(raw: Mapping[str, Any]) -> dict[str, Balance]:
    """ccxt's balance structure as free/total per currency. A currency without a total is
    left out; an exchange that reports no free amount is taken at its total (the exchange
    refuses a sell of locked coins; counting them as 0 would stall every exit)."""
    totals, free = raw.get("total") or {}, raw.get("free") or {}
    out = {}
    for currency, value in totals.items():
        total = dec(value)
        if total is not None:
            out[currency] = Balance(free=dec(free.get(currency), total) or Decimal(0), total=total)
    return out
