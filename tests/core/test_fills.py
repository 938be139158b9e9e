"""Fills applied as deltas (never double-counted) and where ERROR recovery leads."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.markets import BTC_USDT as MARKET
from trader.core.fills import apply_fill, recovery_trigger, sell_done, start_order
from trader.core.market import Order, OrderSide, OrderStatus, OrderType, TimeInForce
from trader.core.phases import Trigger
from trader.core.state import CoinState


def order(
    side: OrderSide, *, amount="0.01", filled="0", avg=None, fee="0", status=OrderStatus.CLOSED
) -> Order:
    return Order(
        id="1",
        client_order_id="c1",
        symbol="BTC/USDT",
        side=side,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.IOC,
        amount=D(amount),
        price=D("100"),
        filled=D(filled),
        average=D(avg) if avg else None,
        fee=D(fee),
        status=status,
    )


def fresh(side=OrderSide.BUY) -> CoinState:
    s = CoinState(symbol="BTC/USDT")
    start_order(s, client_order_id="c1", side=side, amount=D("0.01"), now=1.0)
    return s


def test_buy_fill_seen_twice_is_counted_once():
    s = fresh()
    partial = order(OrderSide.BUY, filled="0.004", avg="100", fee="0.0004", status=OrderStatus.OPEN)
    assert apply_fill(s, partial) == D("0.004")
    full = order(OrderSide.BUY, filled="0.01", avg="101", fee="0.00101")
    assert apply_fill(s, full) == D("0.006")
    assert apply_fill(s, full) == 0  # e.g. seen again by reconciliation after a crash
    assert s.trade.amount == D("0.01")
    assert s.trade.entry_cost == D("1.01")
    assert s.trade.entry_fee == D("0.00101")
    assert s.trade.entry_price == D("101")


def test_sell_fills_accumulate_across_orders():
    s = fresh()
    apply_fill(s, order(OrderSide.BUY, filled="0.01", avg="100", fee="0.001"))
    start_order(s, client_order_id="c2", side=OrderSide.SELL, amount=D("0.01"), now=2.0)
    apply_fill(
        s,
        order(
            OrderSide.SELL, filled="0.006", avg="110", fee="0.00066", status=OrderStatus.CANCELED
        ),
    )
    start_order(s, client_order_id="c3", side=OrderSide.SELL, amount=D("0.004"), now=3.0)
    apply_fill(s, order(OrderSide.SELL, amount="0.004", filled="0.004", avg="109"))
    assert s.trade.sold_amount == D("0.01")
    assert s.trade.exit_proceeds == D("0.66") + D("0.436")
    assert s.remaining == 0


@pytest.mark.parametrize(
    ("sold", "expected"),
    [("0.0094", False), ("0.0095", True), ("0.0099", True)],  # 95 % rule / dust remainder
)
def test_sell_done_threshold(sold, expected):
    s = CoinState(symbol="BTC/USDT", amount=D("0.01"), sold_amount=D(sold))
    # At price 1000 the remainder 0.0006 is worth 0.6 < min cost 5: dust -> done too.
    assert sell_done(s, MARKET, D("100000"), D("0.95")) is expected


@pytest.mark.parametrize(
    ("state_kw", "exchange_order", "expected"),
    [
        ({}, order(OrderSide.BUY, status=OrderStatus.OPEN), Trigger.RECOVERED_BUY_OPEN),
        ({}, order(OrderSide.BUY, filled="0.01", avg="1000"), Trigger.RECOVERED_POSITION),
        ({}, order(OrderSide.BUY, status=OrderStatus.CANCELED), Trigger.RECOVERED_FLAT),
        ({}, None, Trigger.RECOVERED_FLAT),
        ({"amount": D("0.01"), "entry_cost": D("10")}, None, Trigger.RECOVERED_POSITION),
        (
            {"amount": D("0.01"), "entry_cost": D("10")},
            order(OrderSide.SELL, status=OrderStatus.OPEN),
            Trigger.RECOVERED_SELL_OPEN,
        ),
        (
            {"amount": D("0.01"), "entry_cost": D("10")},
            order(OrderSide.SELL, filled="0.01", avg="1100"),
            Trigger.RECOVERED_SOLD,
        ),
        (
            {"amount": D("0.01"), "entry_cost": D("10")},
            order(OrderSide.SELL, filled="0.005", avg="1100", status=OrderStatus.CANCELED),
            Trigger.RECOVERED_POSITION,
        ),
    ],
)
def test_recovery_never_forgets_a_position(state_kw, exchange_order, expected):
    s = fresh(exchange_order.side if exchange_order else OrderSide.BUY)
    for key, value in state_kw.items():
        setattr(s.trade, key, value)
    assert recovery_trigger(s, exchange_order, MARKET, D("1000"), D("0.95")) is expected


def test_buy_fee_withheld_in_base_reduces_the_position_and_is_counted_once():
    # Binance without BNB: a buy's commission is taken from the base asset received.
    s = fresh()
    partial = order(
        OrderSide.BUY, filled="0.004", avg="100", fee="0.0004", status=OrderStatus.OPEN
    ).model_copy(update={"fee_base": D("0.000004")})
    full = order(OrderSide.BUY, filled="0.01", avg="100", fee="0.001").model_copy(
        update={"fee_base": D("0.00001")}
    )
    apply_fill(s, partial)
    apply_fill(s, full)
    apply_fill(s, full)  # seen again: nothing changes
    assert s.trade.amount == D("0.00999")  # what the account really holds
    assert s.trade.entry_fee == D("0.001")
    # Units held cost the order price; the withheld units are the fee, not the basis.
    assert s.trade.entry_price == D("100")
    assert s.trade.entry_cost + s.trade.entry_fee == D("1.000")  # the quote that left the account


def test_pnl_of_a_base_fee_buy_counts_the_fee_once():
    from trader.core.pnl import realized_pnl

    s = fresh()
    apply_fill(
        s,
        order(OrderSide.BUY, filled="0.01", avg="100", fee="0.001").model_copy(
            update={"fee_base": D("0.00001")}
        ),
    )
    start_order(s, client_order_id="c2", side=OrderSide.SELL, amount=s.trade.amount, now=2.0)
    sell = order(OrderSide.SELL, amount="0.00999", filled="0.00999", avg="110", fee="0.0010989")
    apply_fill(s, sell)
    pnl = realized_pnl(
        bought_amount=s.trade.amount,
        entry_cost=s.trade.entry_cost,
        entry_fee=s.trade.entry_fee,
        sold_amount=s.trade.sold_amount,
        exit_proceeds=s.trade.exit_proceeds,
        exit_fee=s.trade.exit_fee,
    )
    # Quote in: 0.00999 * 110 - 0.0010989; quote out: 1.000 (cost incl. the withheld fee).
    assert pnl.net == D("0.00999") * 110 - D("0.0010989") - D("1.000")
