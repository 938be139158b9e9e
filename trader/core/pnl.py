"""Realized PnL with entry and exit fees (exact Decimal, no rounding inside)."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

ZERO = Decimal(0)


class TradePnL(BaseModel):
    model_config = ConfigDict(frozen=True)

    bought_amount: Decimal
    sold_amount: Decimal
    entry_cost: Decimal
    exit_proceeds: Decimal
    entry_fee: Decimal
    exit_fee: Decimal
    gross: Decimal
    fees: Decimal
    net: Decimal
    pct: Decimal
    written_off: Decimal = ZERO
    """Units the account did not hold (a shortfall), closed at zero proceeds."""
    carried_amount: Decimal = ZERO
    """Units neither sold nor written off: carried to the next trade as inventory."""
    carried_cost: Decimal = ZERO
    """Cost basis that goes with them (fees excluded)."""
    carried_fee: Decimal = ZERO
    """Entry fees that go with them."""


class PnLParts(NamedTuple):
    """``TradePnL``'s computed figures (``pnl_parts``)."""

    gross: Decimal
    fees: Decimal
    net: Decimal
    pct: Decimal
    carried_amount: Decimal
    carried_cost: Decimal
    carried_fee: Decimal


def pnl_parts(
    *,
    bought_amount: Decimal,
    entry_cost: Decimal,
    entry_fee: Decimal,
    sold_amount: Decimal,
    exit_proceeds: Decimal,
    exit_fee: Decimal,
    written_off: Decimal = ZERO,
) -> PnLParts:
    """``realized_pnl``'s figures without the model (the backtest's hot path)."""
    closed = sold_amount + written_off
    share = closed / bought_amount if bought_amount > 0 else Decimal(0)
    basis = entry_cost * share
    entry_fee_part = entry_fee * share
    gross = exit_proceeds - basis
    fees = entry_fee_part + exit_fee
    net = gross - fees
    invested = basis + entry_fee_part
    return PnLParts(
        gross=gross,
        fees=fees,
        net=net,
        pct=net / invested * 100 if invested > 0 else Decimal(0),
        carried_amount=max(bought_amount - closed, ZERO),
        carried_cost=entry_cost - basis if bought_amount > closed else ZERO,
        carried_fee=entry_fee - entry_fee_part if bought_amount > closed else ZERO,
    )


def realized_pnl(
    *,
    bought_amount: Decimal,
    entry_cost: Decimal,
    entry_fee: Decimal,
    sold_amount: Decimal,
    exit_proceeds: Decimal,
    exit_fee: Decimal,
    written_off: Decimal = ZERO,
) -> TradePnL:
    """PnL of what the trade closed; cost basis and entry fee are attributed pro rata.

    The trade closes what was sold and what was written off (units the account turned out
    not to hold: their cost is a loss with no proceeds). The rest (units the exchange would
    not take) keeps its share of cost and entry fee out of this trade's PnL: it is carried
    (``carried_*``) and realized by the trade that finally sells it. Nothing is dropped:
    ``entry_cost + entry_fee == basis + entry fee part + carried_cost + carried_fee``.
    """
    inputs = {
        "bought_amount": bought_amount,
        "entry_cost": entry_cost,
        "entry_fee": entry_fee,
        "sold_amount": sold_amount,
        "exit_proceeds": exit_proceeds,
        "exit_fee": exit_fee,
        "written_off": written_off,
    }
    return TradePnL(**inputs, **pnl_parts(**inputs)._asdict())


def unrealized_pnl_pct(price: Decimal, entry_price: Decimal) -> Decimal:
    if entry_price <= 0:
        return Decimal(0)
    return (price / entry_price - 1) * 100
