"""What to sell now: never more than the account holds, never below what the exchange
takes, and never a tradeable remainder left behind.

The workflow asks the exchange for the base balance (free and total) and the best bid
right before each sell; ``plan_sell`` turns that into the order to place, or into "nothing
sellable" (the rest is carried as inventory). Minimums are checked at the price the
exchange checks them at: the limit price of a ladder step, the bid for a market order.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from trader.core.market import MarketInfo, OrderType
from trader.core.sizing import is_dust, round_down, sell_ladder_price

ZERO = Decimal(0)


class SellPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    amount: Decimal
    """Base to sell now, on the market's step; 0: nothing can be sold."""
    order_type: OrderType
    offset_bps: Decimal | None
    """Ladder offset below the bid for a limit IOC; None for a market order."""
    check_price: Decimal
    """The price the exchange checks the order's minimum value at."""
    gone: Decimal
    """Part of the position the account does not hold at all (its total balance is lower):
    a shortfall, written off."""
    locked: Decimal
    """Held but not free (locked by other orders): kept, not sold now."""
    blocked: bool = False
    """Nothing can be sold now although what is held is sellable: coins locked by other
    orders (or a free balance that lags). The exit waits (ERROR backoff), never closes."""
    detail: str


def account_gap(remaining: Decimal, *, free: Decimal, total: Decimal) -> tuple[Decimal, Decimal]:
    """(gone, sellable now): what of ``remaining`` the account no longer has at all, and
    what it holds free to sell (``min(remaining, free)``)."""
    gone = max(remaining - max(total, ZERO), ZERO)
    return gone, min(remaining - gone, max(free, ZERO))


def _sell_basis(
    remaining: Decimal,
    free: Decimal,
    total: Decimal,
    bid: Decimal,
    market: MarketInfo,
    attempt: int,
    ladder: Sequence[Decimal],
    finish: bool,
) -> tuple[Decimal, Decimal, Decimal, Decimal | None]:
    """(gone, free cap, amount on the step, the ladder step's price or None)."""
    gone, cap = account_gap(remaining, free=free, total=total)
    on_ladder = not finish and attempt < len(ladder)
    step_price = sell_ladder_price(bid, attempt, ladder, market.price_tick) if on_ladder else None
    return gone, cap, round_down(cap, market.amount_step), step_price


def _limit_sellable(amount: Decimal, step_price: Decimal | None, market: MarketInfo) -> bool:
    return step_price is not None and not is_dust(amount, step_price, market)


def plan_sell_amount(
    *,
    remaining: Decimal,
    free: Decimal,
    total: Decimal,
    bid: Decimal,
    market: MarketInfo,
    attempt: int,
    ladder: Sequence[Decimal],
    finish: bool,
) -> Decimal:
    """``plan_sell``'s amount without the plan (the backtest's hot path): what is sold now,
    on a ladder step or at market; 0 when nothing can be."""
    _, _, amount, step_price = _sell_basis(
        remaining, free, total, bid, market, attempt, ladder, finish
    )
    if _limit_sellable(amount, step_price, market) or not is_dust(amount, bid, market):
        return amount
    return ZERO


def plan_sell(
    *,
    remaining: Decimal,
    free: Decimal,
    total: Decimal,
    bid: Decimal,
    market: MarketInfo,
    attempt: int,
    ladder: Sequence[Decimal],
    finish: bool,
) -> SellPlan:
    """The next sell of an exit.

    ``finish``: the sell-fill threshold (95 %) is reached; what is left is sold at market
    at once instead of walking the ladder further. A ladder step whose limit price would
    put the order below the minimum value, while a market order at the bid would not,
    becomes a market order: the ladder never turns a sellable remainder into dust.
    """
    basis = _sell_basis(remaining, free, total, bid, market, attempt, ladder, finish)
    gone, cap, amount, step_price = basis
    locked = remaining - gone - cap
    if _limit_sellable(amount, step_price, market):
        return SellPlan(
            amount=amount,
            order_type=OrderType.LIMIT,
            offset_bps=ladder[attempt],
            check_price=step_price,
            gone=gone,
            locked=locked,
            detail=f"IOC -{ladder[attempt]}bps",
        )
    if not is_dust(amount, bid, market):
        why = (
            "market"
            if step_price is None
            else f"market (-{ladder[attempt]}bps would be below the minimum)"
        )
        return SellPlan(
            amount=amount,
            order_type=OrderType.MARKET,
            offset_bps=None,
            check_price=bid,
            gone=gone,
            locked=locked,
            detail="market (finishing the exit)" if finish else why,
        )
    held = round_down(remaining - gone, market.amount_step)
    if locked > 0 and not is_dust(held, bid, market):
        return SellPlan(
            amount=ZERO,
            order_type=OrderType.MARKET,
            offset_bps=None,
            check_price=bid,
            gone=gone,
            locked=locked,
            blocked=True,
            detail=f"{remaining - gone} {market.base} held but only {cap} free: "
            f"{locked} locked by other orders",
        )
    return SellPlan(
        amount=ZERO,
        order_type=OrderType.MARKET,
        offset_bps=None,
        check_price=bid,
        gone=gone,
        locked=locked,
        detail=f"{amount} {market.base} at bid {bid} is below the market minimum "
        f"(amount {market.min_amount}, value {market.min_cost})",
    )


def exit_complete(remaining: Decimal, price: Decimal, market: MarketInfo) -> bool:
    """Nothing sellable is left: the exit is over (any dust is carried as inventory)."""
    return remaining <= 0 or is_dust(remaining, price, market)
