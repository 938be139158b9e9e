"""Inventory: coins a trade could not sell (below the exchange's minimum), carried with their
cost basis until a later trade of the symbol sells them.

Nothing a trade bought is ever dropped from the books: what it sold is realized by it, what
the account turned out not to hold is written off as a loss, and what the exchange would not
take is carried here and joins the symbol's next position, so its cost and fees are realized
by the trade that finally sells it.
"""

from __future__ import annotations

from decimal import Decimal

from trader.core.pnl import TradePnL
from trader.core.state import CoinState

ZERO = Decimal(0)


def join_inventory(state: CoinState) -> Decimal:
    """Fold the inventory into the open position (after its buy filled); returns the amount
    that joined. Its cost joins the position's cost basis (so the trade that sells it
    realizes it), but ``entry_price`` stays the price of this trade's buy: exit levels are
    set from the decision just taken; a blended price would put the stop-loss above a buy
    made on a drop and sell it at once."""
    amount = state.inventory_amount
    if amount <= 0:
        return ZERO
    state.amount += amount
    state.entry_cost += state.inventory_cost
    state.entry_fee += state.inventory_fee
    state.entry_fee_per_unit = state.entry_fee / state.amount
    state.inventory_in_amount += amount
    state.inventory_in_cost += state.inventory_cost + state.inventory_fee
    state.inventory_amount = state.inventory_cost = state.inventory_fee = ZERO
    return amount


def carry(state: CoinState, pnl: TradePnL) -> None:
    """Keep what the closing trade neither sold nor wrote off, with its cost and fees."""
    state.inventory_amount += pnl.carried_amount
    state.inventory_cost += pnl.carried_cost
    state.inventory_fee += pnl.carried_fee


def write_off_inventory(state: CoinState, gone: Decimal) -> tuple[Decimal, Decimal]:
    """Remove ``gone`` units of inventory the account no longer holds; returns the realized
    loss (cost + fees of those units, positive) and the fee part of it."""
    if gone <= 0 or state.inventory_amount <= 0:
        return ZERO, ZERO
    gone = min(gone, state.inventory_amount)
    share = gone / state.inventory_amount
    cost, fee = state.inventory_cost * share, state.inventory_fee * share
    state.inventory_amount -= gone
    state.inventory_cost -= cost
    state.inventory_fee -= fee
    return cost + fee, fee
