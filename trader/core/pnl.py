"""Realized PnL with entry and exit fees (exact Decimal, no rounding inside)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict


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


def realized_pnl(
    *,
    bought_amount: Decimal,
    entry_cost: Decimal,
    entry_fee: Decimal,
    sold_amount: Decimal,
    exit_proceeds: Decimal,
    exit_fee: Decimal,
) -> TradePnL:
    """PnL of what was sold; cost basis and entry fee are attributed pro rata to it.

    A remainder that could not be sold (dust) keeps its share of cost and entry fee out of
    this trade's PnL: it is recorded separately as dust.
    """
    share = sold_amount / bought_amount if bought_amount > 0 else Decimal(0)
    basis = entry_cost * share
    entry_fee_part = entry_fee * share
    gross = exit_proceeds - basis
    fees = entry_fee_part + exit_fee
    net = gross - fees
    invested = basis + entry_fee_part
    pct = net / invested * 100 if invested > 0 else Decimal(0)
    return TradePnL(
        bought_amount=bought_amount, sold_amount=sold_amount, entry_cost=entry_cost,
        exit_proceeds=exit_proceeds, entry_fee=entry_fee, exit_fee=exit_fee,
        gross=gross, fees=fees, net=net, pct=pct,
    )


def unrealized_pnl_pct(price: Decimal, entry_price: Decimal) -> Decimal:
    if entry_price <= 0:
        return Decimal(0)
    return (price / entry_price - 1) * 100
