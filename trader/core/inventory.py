"""Inventory: coins a trade could not sell (below the exchange's minimum), carried with their
cost basis until a later trade of the symbol sells them.

Nothing a trade bought is ever dropped from the books: what it sold is realized by it, what
the account turned out not to hold is written off as a loss, and what the exchange would not
take is carried here and joins the symbol's next position, so its cost and fees are realized
by the trade that finally sells it.
"""

from __future__ import annotations

from decimal import Decimal

from trader.core.pnl import TradePnL, realized_pnl
from trader.core.state import CoinState

ZERO = Decimal(0)


def join_inventory(state: CoinState) -> Decimal:
    """Fold the inventory into the open position (after its buy filled); returns the amount
    that joined. Its cost joins the position's cost basis (so the trade that sells it
    realizes it), but ``entry_price`` stays the price of this trade's buy: exit levels are
    set from the decision just taken; a blended price would put the stop-loss above a buy
    made on a drop and sell it at once."""
    amount = state.inventory.amount
    if amount <= 0:
        return ZERO
    state.trade.amount += amount
    state.trade.entry_cost += state.inventory.cost
    state.trade.entry_fee += state.inventory.fee
    state.trade.entry_fee_per_unit = state.trade.entry_fee / state.trade.amount
    state.trade.inventory_in_amount += amount
    state.trade.inventory_in_cost += state.inventory.cost + state.inventory.fee
    state.inventory.amount = state.inventory.cost = state.inventory.fee = ZERO
    return amount


def carry(state: CoinState, pnl: TradePnL) -> None:
    """Keep what the closing trade neither sold nor wrote off, with its cost and fees."""
    state.inventory.amount += pnl.carried_amount
    state.inventory.cost += pnl.carried_cost
    state.inventory.fee += pnl.carried_fee


def write_off_inventory(state: CoinState, gone: Decimal) -> tuple[Decimal, Decimal]:
    """Remove ``gone`` units of inventory the account no longer holds; returns the realized
    loss (cost + fees of those units, positive) and the fee part of it."""
    if gone <= 0 or state.inventory.amount <= 0:
        return ZERO, ZERO
    gone = min(gone, state.inventory.amount)
    share = gone / state.inventory.amount
    cost, fee = state.inventory.cost * share, state.inventory.fee * share
    state.inventory.amount -= gone
    state.inventory.cost -= cost
    state.inventory.fee -= fee
    return cost + fee, fee


def trade_pnl(state: CoinState) -> TradePnL:
    """The PnL of the open trade as it stands: what it sold and wrote off is closed."""
    t = state.trade
    return realized_pnl(
        bought_amount=t.amount,
        entry_cost=t.entry_cost,
        entry_fee=t.entry_fee,
        sold_amount=t.sold_amount,
        exit_proceeds=t.exit_proceeds,
        exit_fee=t.exit_fee,
        written_off=t.written_off,
    )


def close_books(state: CoinState, pnl: TradePnL, *, closes_trade: bool) -> None:
    """Move a booked trade into the totals and carry what it did not close as inventory.
    ``closes_trade``: False for a buy that only ever got an unsellable amount (no trade to
    count, its cost is carried)."""
    carry(state, pnl)
    state.totals.realized_pnl += pnl.net
    state.totals.fees += pnl.fees
    if closes_trade:
        state.totals.last_trade_pnl = pnl.net
        state.totals.trades_closed += 1
