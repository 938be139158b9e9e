"""Position sizing and order prices, rounded to the market's precision and minimums."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from pydantic import BaseModel, ConfigDict

from trader.core.market import MarketInfo, OrderSide, Ticker

_BPS = Decimal(10_000)


def round_down(value: Decimal, step: Decimal) -> Decimal:
    """The largest multiple of ``step`` not above ``value`` (exact)."""
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def round_up(value: Decimal, step: Decimal) -> Decimal:
    """The smallest multiple of ``step`` not below ``value`` (exact)."""
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


class SizeDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    amount: Decimal
    ok: bool
    reason: str


def buy_amount(budget: Decimal, price: Decimal, market: MarketInfo) -> Decimal:
    """``size_buy``'s amount without the decision: 0 when the buy is refused (the
    backtest's hot path)."""
    if price <= 0:
        return Decimal(0)
    amount = round_down(budget / price, market.amount_step)
    if amount <= 0 or amount < market.min_amount or amount * price < market.min_cost:
        return Decimal(0)
    return amount


def size_buy(budget: Decimal, price: Decimal, market: MarketInfo) -> SizeDecision:
    """How much base to buy with ``budget`` quote at ``price``, or why not."""
    amount = buy_amount(budget, price, market)
    if amount > 0:
        return SizeDecision(amount=amount, ok=True, reason=f"{amount} {market.base} for {budget}")
    # Refused: which check.
    if price <= 0:
        return SizeDecision(amount=Decimal(0), ok=False, reason=f"invalid price {price}")
    amount = round_down(budget / price, market.amount_step)
    if amount <= 0 or amount < market.min_amount:
        return SizeDecision(
            amount=Decimal(0),
            ok=False,
            reason=f"budget {budget} buys {amount} {market.base}, below the minimum amount "
            f"{market.min_amount}",
        )
    return SizeDecision(
        amount=Decimal(0),
        ok=False,
        reason=f"order value {amount * price} {market.quote} is below the minimum cost "
        f"{market.min_cost}",
    )


def is_dust(amount: Decimal, price: Decimal, market: MarketInfo) -> bool:
    """True when ``amount`` cannot be sold as an order on this market."""
    sellable = round_down(amount, market.amount_step)
    return sellable <= 0 or sellable < market.min_amount or sellable * price < market.min_cost


def sellable_amount(amount: Decimal, market: MarketInfo) -> Decimal:
    return round_down(amount, market.amount_step)


def buy_limit_price(ask: Decimal, offset_bps: Decimal, tick: Decimal) -> Decimal:
    """A limit just above the ask so the buy crosses (rounded up to the tick)."""
    return round_up(ask * (1 + offset_bps / _BPS), tick)


def sell_ladder_price(
    bid: Decimal, attempt: int, ladder_bps: Sequence[Decimal], tick: Decimal
) -> Decimal | None:
    """The IOC sell price of ladder step ``attempt``; None past the ladder (use market)."""
    if attempt >= len(ladder_bps):
        return None
    return max(round_down(bid * (1 - ladder_bps[attempt] / _BPS), tick), tick)


def order_limit_price(
    side: OrderSide, ticker: Ticker, offset_bps: Decimal, tick: Decimal
) -> Decimal:
    """A limit order's price: a buy ``offset_bps`` above the ask (so it crosses), a sell
    ``offset_bps`` below the bid (a sell-ladder step), on the market's tick."""
    if side is OrderSide.BUY:
        return buy_limit_price(ticker.ask, offset_bps, tick)
    return max(round_down(ticker.bid * (1 - offset_bps / _BPS), tick), tick)
