"""A watch waiting for a fresh price: read from its heartbeat details, shown in the table.
(Through a real watch and a real server: tests/workflows/test_ccxt_stream.py.)"""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from trader.contracts import PRICE_WAIT_KEY, PriceWait, StatusMemo
from trader.observe.status_table import StatusRow, build_table
from trader.observe.status_waits import price_wait_of

WAIT = PriceWait(age_s=3.25, max_age_s=1.0, source="stream", detail="stream silent for 3.2 s")


def test_the_wait_is_found_before_the_state_and_missing_without_one():
    state = {"trailing": {"peak": "0", "trigger": "0"}}
    details = ["0", "0", {PRICE_WAIT_KEY: WAIT.model_dump(mode="json")}, state]
    assert price_wait_of(details) == WAIT
    assert price_wait_of(["0", "0", state]) is None
    assert WAIT.note() == "waiting: price 3.2 s old (max 1 s; stream silent for 3.2 s)"
    assert (
        PriceWait(age_s=None, max_age_s=5, source="rest", detail="x")
        .note()
        .startswith("waiting: no price")
    )


def test_a_waiting_row_shows_why_instead_of_its_last_note():
    now = datetime.now(UTC)
    memo = StatusMemo(note="position: bought")
    rows = [
        StatusRow("BTC/USDT", "position", now, "a", memo, waiting=WAIT.note()),
        StatusRow("ETH/USDT", "position", now, "b", memo),
    ]
    console = Console(record=True, width=250, file=io.StringIO())
    console.print(build_table(rows, now=now))
    lines = console.export_text().splitlines()
    [btc] = [line for line in lines if "BTC/USDT" in line]
    [eth] = [line for line in lines if "ETH/USDT" in line]
    assert "waiting: price 3.2 s old" in btc and "bought" not in btc
    assert "position: bought" in eth
