"""Applying order fills to ``CoinState`` as deltas, and deciding where recovery leads.

An order's fill may be seen more than once (the wait activity, then a cancel, then a
reconciliation after a crash). Fills are applied as the difference to what was already
counted for the current order, so nothing is ever counted twice.
"""

from __future__ import annotations

from decimal import Decimal

from trader.core.market import MarketInfo, Order, OrderSide, OrderStatus
from trader.core.phases import Trigger
from trader.core.selling import exit_complete
from trader.core.sizing import is_dust
from trader.core.state import CoinState, Trade


def apply_fill(state: CoinState, order: Order) -> Decimal:
    """Add the part of ``order``'s fill not yet counted; return the newly counted amount."""
    delta = order.filled - state.trade.order.filled_applied
    if delta <= 0:
        return Decimal(0)
    cost_delta = order.cost - state.trade.order.cost_applied
    fee_delta = order.fee - state.trade.order.fee_applied
    # A fee withheld in base: the units never reach the account, and their cost is the fee
    # (already in ``fee``), so it leaves both the amount held and its cost basis.
    withheld = order.fee_base - state.trade.order.fee_base_applied
    withheld_value = order.fee_base_value - state.trade.order.fee_base_value_applied
    state.trade.order.filled_applied = order.filled
    state.trade.order.cost_applied = order.cost
    state.trade.order.fee_applied = order.fee
    state.trade.order.fee_base_applied = order.fee_base
    state.trade.order.fee_base_value_applied = order.fee_base_value
    _filled_by(state.trade, order)
    if order.side is OrderSide.BUY:
        state.trade.amount += delta - withheld
        state.trade.entry_cost += cost_delta - withheld_value
        state.trade.entry_fee += fee_delta
        state.trade.entry_price = state.trade.entry_cost / state.trade.amount
        state.trade.entry_fee_per_unit = state.trade.entry_fee / state.trade.amount
    else:
        state.trade.sold_amount += delta
        state.trade.exit_proceeds += cost_delta
        state.trade.exit_fee += fee_delta
    return delta


def _filled_by(trade: Trade, order: Order) -> None:
    """Name ``order`` among the trade's filled orders (the ledger row's order ids)."""
    if order.side is OrderSide.BUY:
        trade.buy_client_order_id = order.client_order_id
    elif order.client_order_id not in trade.sell_client_order_ids:
        trade.sell_client_order_ids.append(order.client_order_id)


def start_order(
    state: CoinState, *, client_order_id: str, side: OrderSide, amount: Decimal, now: float
) -> None:
    """Record a new order before it is placed (its fills start from zero)."""
    state.trade.order.client_order_id = client_order_id
    state.trade.order.order_id = None
    state.trade.order.side = side
    state.trade.order.amount = amount
    state.trade.order.placed_ts = now
    state.trade.order.type = None  # the legacy engine records its plan after this
    state.trade.order.limit_offset_bps = None
    state.trade.order.filled_applied = Decimal(0)
    state.trade.order.cost_applied = Decimal(0)
    state.trade.order.fee_applied = Decimal(0)
    state.trade.order.fee_base_applied = Decimal(0)
    state.trade.order.fee_base_value_applied = Decimal(0)


def sell_done(state: CoinState, market: MarketInfo, price: Decimal, threshold: Decimal) -> bool:
    """The exit is complete: at least ``threshold`` sold, or what is left is unsellable dust."""
    if state.trade.amount <= 0:
        return True
    return state.trade.sold_amount >= state.trade.amount * threshold or is_dust(
        state.remaining, price, market
    )


def recovery_trigger(
    state: CoinState,
    order: Order | None,
    market: MarketInfo,
    price: Decimal,
    threshold: Decimal,
    *,
    sell_remainder: bool = False,
) -> Trigger:
    """Where ERROR goes after reconciling with the exchange (never forgets a position).

    ``order`` is the exchange's view of the symbol's last order (None: never reached it).
    Applies the order's fill to ``state`` as a side effect (as a delta, see module doc).
    ``price`` is the bid (what a sell is checked at). ``sell_remainder``: an exit counts as
    done only when nothing sellable is left (the 95 % threshold no longer leaves a tradeable
    remainder behind); otherwise the position resumes and its standing exit goes on.
    """
    if order is not None:
        if order.status is OrderStatus.OPEN:
            return (
                Trigger.RECOVERED_BUY_OPEN
                if order.side is OrderSide.BUY
                else Trigger.RECOVERED_SELL_OPEN
            )
        apply_fill(state, order)
    if (
        state.trade.amount <= 0
        or is_dust(state.trade.amount, price, market)
        and state.trade.sold_amount == 0
    ):
        return Trigger.RECOVERED_FLAT
    done = (
        exit_complete(state.remaining, price, market)
        if sell_remainder
        else sell_done(state, market, price, threshold)
    )
    if (state.trade.sold_amount > 0 or state.trade.written_off > 0) and done:
        return Trigger.RECOVERED_SOLD
    return Trigger.RECOVERED_POSITION
