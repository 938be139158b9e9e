"""A symbol in ERROR that still holds its position (a sell the exchange refused) shows that
position in the Web UI's details and in the status memo, as it does while holding: DESIGN
§4 asks for "phase and position at a glance", and ERROR is when it matters most."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from trader.core.phases import Phase
from trader.core.state import CoinState
from workflows.details import render_details, status_memo


def state(phase: Phase, *, amount: str = "0.5", sold: str = "0") -> CoinState:
    return CoinState(
        symbol="ETH/USDT",
        exchange="paper",
        phase=phase,
        amount=D(amount),
        sold_amount=D(sold),
        entry_price=D("2000"),
        current_price=D("1900"),
        tp_px=D("2100"),
        sl_px=D("1800"),
        last_error="InsufficientFunds",
    )


@pytest.mark.parametrize("phase", [Phase.POSITION, Phase.ERROR])
def test_a_held_position_is_shown(phase):
    s = state(phase, sold="0.2")
    details = render_details(s, simulated=False)
    assert "position 0.3 @ 2000 · last 1900 · unrealized -5.00 %" in details
    memo = status_memo(s, simulated=False)
    assert (memo.entry, memo.pnl_pct) == (D("2000"), D("-5.00"))


@pytest.mark.parametrize(
    ("phase", "amount", "sold"),
    [
        (Phase.ERROR, "0", "0"),  # a buy that failed: nothing held
        (Phase.ERROR, "0.5", "0.5"),  # everything sold: nothing left to show
        (Phase.IDLE, "0", "0"),
    ],
)
def test_flat_shows_no_position(phase, amount, sold):
    s = state(phase, amount=amount, sold=sold)
    assert "position" not in render_details(s, simulated=False)
    memo = status_memo(s, simulated=False)
    assert (memo.entry, memo.pnl_pct) == (D(0), None)
