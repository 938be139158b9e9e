"""What to sell now (never more than the account holds, minimums at the price the exchange
checks, no tradeable remainder left), inventory, and PnL that hides no loss."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from tests.markets import BTC_USDT as BTC
from trader.core.inventory import carry, join_inventory, write_off_inventory
from trader.core.market import OrderType
from trader.core.pnl import realized_pnl
from trader.core.selling import account_gap, exit_complete, plan_sell, plan_sell_amount
from trader.core.state import CoinState

LADDER = (D(0), D(10), D(25), D(50))


def plan(**kw):  # noqa: ANN003, ANN201
    args = dict(
        remaining=D("1"),
        free=D("1"),
        total=D("1"),
        bid=D("100"),
        market=BTC,
        attempt=0,
        ladder=LADDER,
        finish=False,
    )
    return plan_sell(**{**args, **kw})


def test_sells_at_most_the_free_balance_rounded_down_to_the_step():
    p = plan(remaining=D("1.0209"), free=D("0.91876"), total=D("0.91876"))
    assert p.amount == D("0.9187") and p.gone == D("1.0209") - D("0.91876")
    assert p.order_type is OrderType.LIMIT and p.offset_bps == 0


def test_locked_coins_are_kept_not_written_off():
    p = plan(remaining=D("1"), free=D("0.4"), total=D("1"))
    assert (p.amount, p.gone, p.locked) == (D("0.4"), 0, D("0.6"))
    p = plan(remaining=D("1"), free=D("0"), total=D("1"))
    assert p.amount == 0 and p.locked == 1 and "locked" in p.detail
    assert p.blocked  # 100 USDT of coins: the exit waits, it is not inventory


def test_locked_dust_is_not_blocked_but_unsellable():
    p = plan(remaining=D("0.04"), free=D("0"), total=D("0.04"))
    assert p.amount == 0 and not p.blocked and "below the market minimum" in p.detail


def test_a_balance_above_the_position_sells_only_the_position():
    p = plan(remaining=D("0.5"), free=D("3"), total=D("3"))
    assert (p.amount, p.gone) == (D("0.5"), 0)


def test_the_minimum_is_checked_at_the_bid_not_the_last_price():
    # 0.05 BTC is worth 5.0 at last 100 but 4.9975 at bid 99.95: the exchange refuses it.
    p = plan(remaining=D("0.05"), free=D("0.05"), total=D("0.05"), bid=D("99.95"))
    assert p.amount == 0 and "below the market minimum" in p.detail


def test_a_ladder_step_below_the_minimum_becomes_a_market_order():
    # At -50 bps the limit is 99.50: 0.0502 * 99.50 = 4.9949 < 5, but at the bid 5.02.
    p = plan(remaining=D("0.0502"), free=D("1"), total=D("1"), attempt=3)
    assert p.order_type is OrderType.MARKET and p.amount == D("0.0502")
    assert p.check_price == D("100")


def test_past_the_threshold_the_rest_is_sold_at_market():
    p = plan(remaining=D("0.06"), finish=True)
    assert p.order_type is OrderType.MARKET and p.amount == D("0.06")
    assert "finishing" in p.detail


def test_past_the_ladder_a_market_order():
    assert plan(attempt=len(LADDER)).order_type is OrderType.MARKET


@given(
    remaining=st.decimals("0", "10", places=6),
    free=st.decimals("-1", "10", places=6),
    total=st.decimals("0", "10", places=6),
)
def test_never_sells_more_than_held_or_free(remaining, free, total):
    total = max(total, free)
    gone, cap = account_gap(remaining, free=free, total=total)
    p = plan(remaining=remaining, free=free, total=total)
    assert 0 <= p.amount <= cap <= remaining and p.amount <= max(free, D(0))
    assert gone + cap + p.locked == remaining and gone >= 0 and p.locked >= 0


def test_exit_complete_only_when_nothing_sellable_is_left():
    assert exit_complete(D(0), D("100"), BTC)
    assert exit_complete(D("0.04"), D("100"), BTC)  # 4 USDT: unsellable, carried
    assert not exit_complete(D("0.06"), D("100"), BTC)  # 6 USDT: sell it


def test_pnl_books_a_write_off_as_a_loss_and_carries_the_rest():
    pnl = realized_pnl(
        bought_amount=D("1"),
        entry_cost=D("100"),
        entry_fee=D("0.1"),
        sold_amount=D("0.8"),
        exit_proceeds=D("88"),
        exit_fee=D("0.088"),
        written_off=D("0.1"),
    )
    # Closed 0.9 of the position: 90 of basis, 0.09 of the entry fee.
    assert pnl.net == D("88") - D("90") - D("0.09") - D("0.088")
    assert (pnl.carried_amount, pnl.carried_cost, pnl.carried_fee) == (D("0.1"), D("10"), D("0.01"))


@given(
    bought=st.decimals("0.001", "10", places=4),
    sold_share=st.decimals("0", "1", places=3),
    off_share=st.decimals("0", "1", places=3),
    cost=st.decimals("1", "10000", places=2),
    fee=st.decimals("0", "10", places=4),
)
def test_no_cost_or_fee_ever_leaves_the_books(bought, sold_share, off_share, cost, fee):
    sold = bought * sold_share
    off = (bought - sold) * off_share
    pnl = realized_pnl(
        bought_amount=bought,
        entry_cost=cost,
        entry_fee=fee,
        sold_amount=sold,
        exit_proceeds=D(0),
        exit_fee=D(0),
        written_off=off,
    )
    # With zero proceeds the loss plus what is carried is everything that was paid.
    assert abs(-pnl.net + pnl.carried_cost + pnl.carried_fee - (cost + fee)) < D("1e-20")
    assert abs(pnl.carried_amount - (bought - sold - off)) < D("1e-20")


def test_inventory_joins_the_next_position_and_its_cost_basis():
    s = CoinState(symbol="BTC/USDT", amount=D("0.05"), entry_cost=D("5"), entry_fee=D("0.005"))
    pnl = realized_pnl(
        bought_amount=s.trade.amount,
        entry_cost=s.trade.entry_cost,
        entry_fee=s.trade.entry_fee,
        sold_amount=D(0),
        exit_proceeds=D(0),
        exit_fee=D(0),
    )
    assert pnl.net == 0 and pnl.carried_amount == D("0.05")  # nothing realized yet ...
    carry(s, pnl)
    s.clear_trade()
    assert s.has_inventory and s.trade.amount == 0
    s.trade.amount, s.trade.entry_cost, s.trade.entry_fee = (
        D("0.05"),
        D("4.75"),
        D("0.00475"),
    )  # a new buy
    s.trade.entry_price = D("95")
    assert join_inventory(s) == D("0.05")
    assert (
        s.trade.amount == D("0.1")
        and s.trade.entry_cost == D("9.75")
        and s.trade.entry_fee == D("0.00975")
    )
    assert join_inventory(s) == 0  # nothing more to join
    # Exit levels stay those of the buy just made; the cost basis carries the old coins.
    assert s.trade.entry_price == D("95") and not s.has_inventory
    assert s.trade.inventory_in_amount == D("0.05") and s.trade.inventory_in_cost == D("5.005")
    # ... and the next trade realizes the old cost with its own.
    pnl = realized_pnl(
        bought_amount=s.trade.amount,
        entry_cost=s.trade.entry_cost,
        entry_fee=s.trade.entry_fee,
        sold_amount=s.trade.amount,
        exit_proceeds=D("9.9"),
        exit_fee=D("0.0099"),
    )
    assert pnl.net == D("9.9") - D("9.75") - D("0.00975") - D("0.0099")


def test_inventory_write_off_is_a_realized_loss_with_its_fees():
    s = CoinState(
        symbol="BTC/USDT",
        inventory_amount=D("0.1"),
        inventory_cost=D("10"),
        inventory_fee=D("0.01"),
    )
    assert write_off_inventory(s, D("0.04")) == (D("4.004"), D("0.004"))
    assert (s.inventory.amount, s.inventory.cost, s.inventory.fee) == (
        D("0.06"),
        D("6.0"),
        D("0.006"),
    )
    assert write_off_inventory(s, D("5")) == (D("6.006"), D("0.006"))  # never below zero
    assert not s.has_inventory


def test_remaining_excludes_what_was_written_off():
    s = CoinState(symbol="BTC/USDT", amount=D("1"), sold_amount=D("0.5"), written_off=D("0.2"))
    assert s.remaining == D("0.3") and s.holds_position


amounts = st.decimals(min_value=D(0), max_value=D("3"), places=5)


@given(
    amounts,
    amounts,
    amounts,
    st.sampled_from([D("0.5"), D("100"), D("20000")]),
    st.integers(0, 5),
    st.booleans(),
)
def test_the_plain_sell_amount_is_the_plans(
    remaining: D, free: D, total: D, bid: D, attempt: int, finish: bool
) -> None:
    kw = {"remaining": remaining, "free": free, "total": total, "bid": bid}
    plain = plan_sell_amount(market=BTC, ladder=LADDER, attempt=attempt, finish=finish, **kw)
    assert plain == plan(attempt=attempt, finish=finish, **kw).amount
