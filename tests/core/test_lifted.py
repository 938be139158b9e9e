"""Pure pieces both engines call (lifted out of workflows/ and activities/)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trader.core.inventory import close_books, trade_pnl
from trader.core.market import OrderSide, Ticker
from trader.core.params import TraderParams, backoff_seconds
from trader.core.rules import sma_of
from trader.core.sizing import order_limit_price
from trader.core.state import CoinState

D = Decimal


@pytest.mark.parametrize(("failures", "seconds"), [(0, 10), (1, 10), (2, 20), (3, 40), (9, 300)])
def test_backoff_doubles_after_the_first_failure_up_to_the_cap(
    failures: int, seconds: float
) -> None:
    params = TraderParams(fsm_backoff_base_seconds=10, fsm_backoff_max_seconds=300)
    assert backoff_seconds(failures, params) == seconds


def test_sma_of_the_last_period_closes() -> None:
    closes = [D(1), D(2), D(3), D(4)]
    assert sma_of(closes, 2) == D("3.5")
    assert sma_of(closes, 5) is None  # not enough closes yet
    assert sma_of(closes, 0) is None  # the guard is off


def test_limit_prices_cross_the_book_on_the_tick() -> None:
    t = Ticker(symbol="X/Y", ts_ms=1, bid=D("99.99"), ask=D("100.01"), last=D("100"))
    assert order_limit_price(OrderSide.BUY, t, D(10), D("0.01")) == D("100.12")  # up
    assert order_limit_price(OrderSide.SELL, t, D(10), D("0.01")) == D("99.89")  # down
    assert order_limit_price(OrderSide.SELL, t, D(9999), D("0.01")) == D("0.01")  # >= tick


def test_close_books_realizes_the_sold_part_and_carries_the_rest() -> None:
    s = CoinState(symbol="X/Y")
    s.trade.amount, s.trade.entry_cost, s.trade.entry_fee = D(2), D(200), D(2)
    s.trade.sold_amount, s.trade.exit_proceeds, s.trade.exit_fee = D(1), D(110), D(1)
    pnl = trade_pnl(s)
    assert pnl.net == D(110) - D(100) - D(1) - D(1)
    close_books(s, pnl, closes_trade=True)
    assert (s.totals.trades_closed, s.totals.realized_pnl, s.totals.fees) == (1, D(8), D(2))
    assert (s.inventory.amount, s.inventory.cost, s.inventory.fee) == (D(1), D(100), D(1))
    close_books(s, trade_pnl(s), closes_trade=False)
    assert s.totals.trades_closed == 1  # an unsellable buy counts no trade
