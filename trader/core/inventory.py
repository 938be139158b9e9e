"""Inventory: coins a trade could not sell (below the exchange's minimum), carried with their
cost basis until a later trade of the symbol sells them.

Nothing a trade bought is ever dropped from the books: what it sold is realized by it, what
the account turned out not to hold is written off as a loss, and what the exchange would not
take is carried here and joins the symbol's next position, so its cost and fees are realized
by the trade that finally sells it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from trader.core.messages import fmt
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


# --- what the books say about it (both engines write these rows and notifications) ---------
@dataclass(frozen=True)
class InventoryMove:
    """One inventory ledger row (``InventoryRecord``) to write, and what to tell."""

    kind: str
    """``carried``, ``shortfall``, ``inventory_write_off`` or ``rounding``."""
    amount: Decimal
    cost: Decimal
    """Quote cost basis of ``amount``, entry fees included."""
    reason: str
    notice: str = ""
    """The notification's text ("" for none: rounding must not page anyone)."""

    @property
    def notice_kind(self) -> str:
        return "inventory" if self.kind == "carried" else "shortfall"


def _base(state: CoinState) -> str:
    return state.market.base if state.market else ""


def carried_move(state: CoinState, pnl: TradePnL) -> InventoryMove | None:
    """What a closing trade could not sell (below the market minimum): carried as inventory
    with its cost and fees; the row is written before ``close_books`` carries it."""
    if pnl.carried_amount <= 0:
        return None
    cost = pnl.carried_cost + pnl.carried_fee
    return InventoryMove(
        "carried",
        pnl.carried_amount,
        cost,
        f"below the market minimum at bid {fmt(state.bid)}; joins the next trade",
        notice=f"{state.symbol}: kept {fmt(pnl.carried_amount)} {_base(state)} as inventory "
        f"(cost {fmt(cost, 8)}): below the market minimum, it joins the next trade",
    )


def _shortfall(
    state: CoinState, kind: str, amount: Decimal, cost: Decimal, what: str
) -> InventoryMove:
    """A shortfall is never silent (row, notification, note). Less than one lot step is
    bookkeeping (rounding of fees withheld in base): ``rounding``, no notification."""
    market = state.market
    if market is not None and amount < market.amount_step:
        kind = "rounding"
    text = f"shortfall: {what}; written off at cost {fmt(cost, 8)}"
    state.note = text
    notice = "" if kind == "rounding" else f"{state.symbol}: {text}"
    return InventoryMove(kind, amount, cost, text, notice=notice)


def write_off_position(state: CoinState, gone: Decimal, why: str) -> InventoryMove | None:
    """Part of the open position is not on the account: closed at zero proceeds (its cost
    becomes part of this trade's loss)."""
    gone = min(gone, state.remaining)
    if gone <= 0:
        return None
    t = state.trade
    cost = (t.entry_cost + t.entry_fee) * gone / t.amount
    t.written_off += gone
    return _shortfall(
        state,
        "shortfall",
        gone,
        cost,
        f"the account holds {fmt(gone)} {_base(state)} less than the trade ({why})",
    )


def write_off_lost_inventory(state: CoinState, gone: Decimal, why: str) -> InventoryMove | None:
    """Inventory the account no longer holds: its cost is a realized loss now, outside any
    trade (its own kind, so the ledger's total, trades plus these, equals the state's)."""
    amount = min(gone, state.inventory.amount)
    loss, fee = write_off_inventory(state, amount)
    if amount <= 0:
        return None
    state.totals.realized_pnl -= loss
    state.totals.fees += fee
    return _shortfall(
        state,
        "inventory_write_off",
        amount,
        loss,
        f"inventory {fmt(amount)} {_base(state)} is not on the account ({why})",
    )


def uncovered(state: CoinState, total: Decimal) -> Decimal:
    """What the symbol holds (position and inventory) beyond the account's total balance."""
    held = state.remaining if state.holds_position else ZERO
    return max(held + state.inventory.amount - max(total, ZERO), ZERO)


def cover(state: CoinState, total: Decimal, why: str) -> list[InventoryMove]:
    """Write off what the account's (confirmed) total balance does not cover: the inventory
    (older coins) first, then the open position."""
    moves = []
    gone = uncovered(state, total)
    if gone > 0 and (lost := write_off_lost_inventory(state, gone, why)) is not None:
        moves.append(lost)
        gone -= lost.amount
    if gone > 0 and state.holds_position and (short := write_off_position(state, gone, why)):
        moves.append(short)
    return moves
