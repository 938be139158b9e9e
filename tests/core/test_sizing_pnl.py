"""Sizing to market precision, order prices, PnL with fees, message formatting."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.markets import BTC_USDT_FINE as BTC
from trader.core.market import MarketInfo
from trader.core.messages import format_entry, format_exit
from trader.core.pnl import pnl_parts, realized_pnl
from trader.core.sizing import (
    buy_amount,
    buy_limit_price,
    is_dust,
    round_down,
    round_up,
    sell_ladder_price,
    size_buy,
)

XRP_ETH = MarketInfo(
    symbol="XRP/ETH",
    base="XRP",
    quote="ETH",
    price_tick=D("0.00000001"),
    amount_step=D("1"),
    min_amount=D("1"),
    min_cost=D("0.001"),
)


@pytest.mark.parametrize(
    ("value", "step", "down", "up"),
    [
        ("1.23456", "0.01", "1.23", "1.24"),
        ("1.23", "0.01", "1.23", "1.23"),
        ("0.000053219", "0.00000001", "0.00005321", "0.00005322"),
        ("1234", "10", "1230", "1240"),
    ],
)
def test_rounding_is_exact(value, step, down, up):
    assert round_down(D(value), D(step)) == D(down)
    assert round_up(D(value), D(step)) == D(up)


@pytest.mark.parametrize(
    ("market", "budget", "price", "amount", "ok"),
    [
        (BTC, "100", "65000", "0.00153", True),
        (BTC, "4", "65000", "0", False),  # below min cost 5
        (XRP_ETH, "0.01", "0.00019", "52", True),
        (XRP_ETH, "0.0001", "0.00019", "0", False),  # buys 0 XRP
    ],
)
def test_size_buy(market, budget, price, amount, ok):
    decision = size_buy(D(budget), D(price), market)
    assert decision.ok is ok and decision.amount == D(amount)
    if not ok:
        assert "minimum" in decision.reason


@given(
    st.decimals(min_value=D(5), max_value=D(10**6), places=2),
    st.decimals(min_value=D("0.01"), max_value=D(10**5), places=2),
)
def test_size_buy_never_exceeds_budget_and_fits_the_step(budget, price):
    decision = size_buy(budget, price, BTC)
    if decision.ok:
        assert decision.amount * price <= budget
        assert decision.amount % BTC.amount_step == 0


def test_dust():
    assert is_dust(D("0.00005"), D("65000"), BTC)  # worth 3.25 < 5
    assert not is_dust(D("0.0001"), D("65000"), BTC)
    assert is_dust(D("0.000009"), D(10**9), BTC)  # below the step, however valuable


def test_order_prices_round_the_safe_way():
    assert buy_limit_price(D("100.00"), D("10"), D("0.01")) == D("100.10")
    assert buy_limit_price(D("100.01"), D("10"), D("0.01")) == D("100.12")  # 100.11001 up
    assert sell_ladder_price(D("100"), 0, [D(0), D(25)], D("0.01")) == D("100")
    assert sell_ladder_price(D("100.01"), 1, [D(0), D(25)], D("0.01")) == D("99.75")  # 99.7599
    assert sell_ladder_price(D("100"), 2, [D(0), D(25)], D("0.01")) is None  # market


@given(
    st.decimals(min_value=D("0.0001"), max_value=D(10**5), places=4),
    st.lists(st.decimals(min_value=D(0), max_value=D(500), places=0), min_size=1, max_size=6).map(
        sorted
    ),
)
def test_sell_ladder_is_non_increasing(bid, ladder):
    got: list[D] = []
    for i in range(len(ladder)):
        price = sell_ladder_price(bid, i, ladder, D("0.0001"))
        assert price is not None  # inside the ladder: a limit price, never market
        got.append(price)
    assert got == sorted(got, reverse=True)


@given(
    st.decimals(min_value=D("0.00000001"), max_value=D(10**5), places=8),
    st.decimals(min_value=D("0.001"), max_value=D(1000), places=3),
    st.decimals(min_value=D(0), max_value=D("0.01"), places=4),
)
def test_round_trip_without_price_change_loses_exactly_the_fees(price, amount, fee_rate):
    cost = price * amount
    pnl = realized_pnl(
        bought_amount=amount,
        entry_cost=cost,
        entry_fee=cost * fee_rate,
        sold_amount=amount,
        exit_proceeds=cost,
        exit_fee=cost * fee_rate,
    )
    assert pnl.net == -(cost * fee_rate * 2)
    assert pnl.gross == 0


def test_partial_exit_attributes_cost_and_entry_fee_pro_rata():
    pnl = realized_pnl(
        bought_amount=D(2),
        entry_cost=D(200),
        entry_fee=D("0.2"),
        sold_amount=D("1.9"),
        exit_proceeds=D(209),
        exit_fee=D("0.209"),
    )
    assert pnl.gross == D(209) - D(190)
    assert pnl.fees == D("0.19") + D("0.209")
    assert pnl.net == pnl.gross - pnl.fees
    assert pnl.pct == pnl.net / (D(190) + D("0.19")) * 100


def test_messages_show_tiny_prices_plainly_and_mark_simulation():
    text = format_entry(
        symbol="XRP/ETH", amount=D(52), price=D("0.00019"), cost=D("0.00988"), simulated=True
    )
    assert text.startswith("[SIMULATED]") and "0.00019" in text and "E-" not in text
    pnl = realized_pnl(
        bought_amount=D(1),
        entry_cost=D(100),
        entry_fee=D("0.1"),
        sold_amount=D(1),
        exit_proceeds=D(103),
        exit_fee=D("0.103"),
    )
    exit_text = format_exit(symbol="BTC/USDT", pnl=pnl, reason="take_profit", simulated=False)
    assert "take_profit" in exit_text and "2.79700000" in exit_text
    assert not exit_text.startswith("[SIMULATED]")


money = st.decimals(min_value=D("0.00000001"), max_value=D("50000"), places=8)


@given(money, money, st.sampled_from([BTC, XRP_ETH]))
def test_the_plain_buy_amount_is_the_sizings(budget: D, price: D, market: MarketInfo) -> None:
    sizing = size_buy(budget, price, market)
    assert buy_amount(budget, price, market) == sizing.amount
    assert sizing.ok == (sizing.amount > 0)


@given(money, money, money, money, money, money, money)
def test_the_plain_pnl_parts_are_the_models(
    bought: D, cost: D, fee: D, sold: D, proceeds: D, exit_fee: D, written_off: D
) -> None:
    kw = {"bought_amount": bought, "entry_cost": cost, "entry_fee": fee}
    kw |= {"sold_amount": min(sold, bought), "exit_proceeds": proceeds, "exit_fee": exit_fee}
    kw["written_off"] = min(written_off, bought - kw["sold_amount"])
    parts, pnl = pnl_parts(**kw), realized_pnl(**kw)
    assert parts._asdict() == pnl.model_dump(include=set(parts._fields))
