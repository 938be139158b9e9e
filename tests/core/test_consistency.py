"""The consistency window's arithmetic and what a look at the exchange's lists proves."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from trader.core.consistency import (
    MIN_CREATE_ROOM_S,
    SEND_MARGIN_S,
    SINCE_SLACK_S,
    Seen,
    attempt_times,
    seen_in_lists,
    window_problem,
)
from trader.core.market import Order, OrderSide, OrderStatus, OrderType, TimeInForce


def test_the_window_starts_at_the_attempt_s_schedule_and_the_deadline_at_its_start():
    t = attempt_times(
        now=100.0, now_wall=1_000.0, queued_s=1.5, since_first_s=4.0, timeout_s=15.0, window_s=5.0
    )
    assert (t.window_start, t.window_end) == (98.5, 103.5)
    assert t.deadline == 100.0 + 15.0 - SEND_MARGIN_S < t.end < 115.0
    assert t.since_ms == int((1_000.0 - 4.0 - SINCE_SLACK_S) * 1000)


def test_a_negative_gap_between_server_instants_counts_as_none():
    # The server's instants come from one clock; a negative gap can only be rounding.
    t = attempt_times(
        now=10.0, now_wall=50.0, queued_s=-0.2, since_first_s=-1.0, timeout_s=None, window_s=3.0
    )
    assert (t.window_start, t.window_end) == (10.0, 13.0)
    assert t.deadline == t.end == float("inf")
    assert t.since_ms == int((50.0 - SINCE_SLACK_S) * 1000)


@pytest.mark.parametrize(
    ("window_s", "timeout_s", "ok"),
    [
        (5, 15, True),
        (3, 3 + MIN_CREATE_ROOM_S, True),
        (3, 3.9, False),
        (15, 15, False),
        (0, 15, False),
        (-1, 15, False),
    ],
)
def test_a_window_must_leave_the_attempt_room_to_create(window_s, timeout_s, ok):
    assert (window_problem(window_s, timeout_s) is None) is ok


def _order(cid: str, side: OrderSide = OrderSide.BUY) -> Order:
    return Order(
        id="7",
        client_order_id=cid,
        symbol="BTC/USDT",
        side=side,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.IOC,
        amount=D(1),
        filled=D(1),
        status=OrderStatus.CLOSED,
    )


@pytest.mark.parametrize(
    ("orders", "seen"),
    [
        ([], Seen.ABSENT),
        ([_order("other")], Seen.ABSENT),
        ([_order("")], Seen.UNATTRIBUTED),  # a trade of our side whose order is not known
        ([_order("", OrderSide.SELL)], Seen.ABSENT),  # the other side cannot be our order
        ([_order(""), _order("ours")], Seen.FOUND),
    ],
)
def test_what_the_lists_prove_about_our_client_id(orders, seen):
    found, order = seen_in_lists("ours", OrderSide.BUY, orders)
    assert found is seen and (order is not None) is (seen is Seen.FOUND)
