"""The status table's pure parts, without a server: row order, time in phase, the PnL
sign and colour, hidden rows (the scene tests check a real frame; these pin the edges)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from rich.console import Console

from trader.contracts import StatusMemo
from trader.core.phases import Phase
from trader.observe.status_table import StatusRow, build_table, sort_rows

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def row(
    symbol: str,
    phase: Phase | str,
    *,
    ago: float | None = 5,
    memo: StatusMemo | None = None,
    wf: str = "",
) -> StatusRow:
    since = None if ago is None else NOW - timedelta(seconds=ago)
    return StatusRow(
        symbol=symbol,
        phase=getattr(phase, "value", phase),
        since=since,
        workflow_id=wf or f"wf-{symbol}",
        memo=memo,
    )


def lines(rows: list[StatusRow], *, show_idle: bool = True, width: int = 200) -> list[str]:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(build_table(rows, now=NOW, show_idle=show_idle))
    return console.export_text().splitlines()


def column(rows: list[StatusRow], header: str) -> list[object]:
    table = build_table(rows, now=NOW, show_idle=True)
    return list(next(c for c in table.columns if c.header == header).cells)


def test_errors_then_open_trades_then_the_rest_each_by_symbol():
    rows = [
        row("ZZZ/USDT", Phase.IDLE),
        row("BBB/USDT", Phase.COOLDOWN),
        row("YYY/USDT", Phase.WAIT_SELL_FILL),
        row("XXX/USDT", Phase.ERROR),
        row("AAA/USDT", Phase.POSITION),
        row("CCC/USDT", Phase.ERROR),
        row("AAA/USDT", Phase.POSITION, wf="wf-0"),
    ]
    assert [(r.symbol, r.workflow_id) for r in sort_rows(rows)] == [
        ("CCC/USDT", "wf-CCC/USDT"),
        ("XXX/USDT", "wf-XXX/USDT"),
        ("AAA/USDT", "wf-0"),
        ("AAA/USDT", "wf-AAA/USDT"),
        ("YYY/USDT", "wf-YYY/USDT"),
        ("BBB/USDT", "wf-BBB/USDT"),
        ("ZZZ/USDT", "wf-ZZZ/USDT"),
    ]


@pytest.mark.parametrize(
    ("ago", "shown"),
    [
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m00s"),
        (125, "2m05s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (3 * 3600 + 7 * 60 + 59, "3h07m"),
        (50 * 3600, "50h00m"),
        (-30, "0s"),  # a clock behind the server's: never negative
        (None, "?"),
    ],
)
def test_time_in_phase(ago, shown):
    assert column([row("BTC/USDT", Phase.WAIT_FILL, ago=ago)], "in phase") == [shown]


def test_pnl_sign_and_colour():
    loss = StatusMemo(price=D("95"), entry=D("100"), pnl_pct=D("-5"))
    gain = StatusMemo(price=D("101.5"), entry=D("100"), pnl_pct=D("1.5"))
    rows = [
        row("LOS/USDT", Phase.POSITION, memo=loss),
        row("GAI/USDT", Phase.POSITION, memo=gain),
        row("FLT/USDT", Phase.COOLDOWN, memo=StatusMemo(price=D("3.10"))),
    ]
    assert [(str(c), getattr(c, "style", None)) for c in column(rows, "PnL %")] == [
        ("-5.00", "red"),
        ("+1.50", "green"),
        ("-", "dim"),
    ]
    assert column(rows, "entry") == ["100", "100", "-"]  # flat: no entry, no PnL
    assert column(rows, "last") == ["95", "101.5", "3.1"]


def test_idle_and_warmup_are_hidden_and_counted_unless_shown():
    rows = [
        row("IDL/USDT", Phase.IDLE),
        row("WRM/USDT", Phase.WARMUP),
        row("COO/USDT", Phase.COOLDOWN),
    ]
    hidden = "\n".join(lines(rows, show_idle=False))
    assert "IDL/USDT" not in hidden and "WRM/USDT" not in hidden and "COO/USDT" in hidden
    assert "3 symbols" in hidden and "2 idle/warmup hidden" in hidden
    shown = "\n".join(lines(rows, show_idle=True))
    assert all(s in shown for s in ("IDL/USDT", "WRM/USDT", "COO/USDT"))
    assert "hidden" not in shown


@pytest.mark.parametrize("width", [100, 120])
def test_on_a_narrow_terminal_the_note_gives_way_not_the_phase_or_the_numbers(width):
    held = StatusMemo(
        price=D("2011.25"),
        entry=D("2000.5"),
        pnl_pct=D("0.53"),
        trailing=D("2005.1"),
        note="bought 1.0209 @ 2000.5 after a drop of 0.15 % from the peak at 2003.5",
    )
    failing = StatusMemo(note="error: paper: injected rejection of the sell order, in backoff")
    text = "\n".join(
        lines(
            [
                row("ETH/USDT", Phase.POSITION, memo=held),
                row("BTC/USDT", Phase.WAIT_SELL_FILL, memo=failing),
            ],
            width=width,
        )
    )
    for whole in (
        "ETH/USDT",
        "BTC/USDT",
        "position",
        "wait_sell_fill",
        "2011.25",
        "2000.5",
        "+0.53",
        "2005.1",
        "in phase",
        "trailing",
    ):
        assert whole in text, (whole, text)
    assert "…" in text  # the note was cut, on one line
    assert max(len(line) for line in text.splitlines()) <= width
