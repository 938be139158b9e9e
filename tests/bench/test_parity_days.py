"""bench/parity_days.py reads what bench/parity.py prints: the table is produced here by
bench.parity's own ``table``, so a change of its format fails this test, not a 4-hour run."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from bench.parity import closing_line, table
from bench.parity_days import parse, tables, windows
from trader.runtime.parity import Result, TradeRow


def _row(symbol: str, entry_ms: int, reason: str = "take_profit") -> TradeRow:
    return TradeRow(
        symbol, entry_ms, D("1.5"), D("2"), entry_ms + 300_000, D("1.6"), D("2"), reason
    )


def _printed(result: Result, symbols: list[str], closing: bool = True) -> str:
    lines, _ = table(result, symbols)
    if closing:
        lines.append(closing_line(result, 500))
    return "\n".join(lines)


def test_a_day_with_one_differing_pair_is_not_identical_and_counts_each_side():
    same, late = _row("ADA/BTC", 1), _row("TRX/BTC", 10)
    result = Result(
        legacy=[same, late, _row("TRX/BTC", 20)],
        fsm=[same, _row("TRX/BTC", 11), _row("TRX/BTC", 20)],
        points=1152,
        wall_s=592.4,
    )
    day = parse("2018-01-12", _printed(result, ["ADA/BTC", "TRX/BTC", "XLM/BTC"]))
    assert day.complete and not day.identical
    assert day.rows == {"ADA/BTC": (1, 1, True), "TRX/BTC": (2, 2, False), "XLM/BTC": (0, 0, True)}
    assert (day.points, day.wall_s) == (1152, 592)


def test_a_run_without_its_closing_line_is_a_failed_run_not_a_pass():
    result = Result(legacy=[_row("ADA/BTC", 1)], fsm=[_row("ADA/BTC", 1)], points=10, wall_s=5)
    day = parse("2018-01-13", _printed(result, ["ADA/BTC"], closing=False))
    assert day.rows == {"ADA/BTC": (1, 1, True)} and not day.complete and not day.identical
    assert "| 2018-01-13 | 0 | 1 | 1 | run failed | 0 |" in tables([day])


def test_the_pair_table_sums_trades_over_days_and_counts_identical_days():
    a = Result(legacy=[_row("ADA/BTC", 1)], fsm=[_row("ADA/BTC", 1)], points=4, wall_s=2)
    b = Result(legacy=[_row("ADA/BTC", 5)], fsm=[], points=4, wall_s=2)
    days = [parse(n, _printed(r, ["ADA/BTC"])) for n, r in (("d1", a), ("d2", b))]
    out = tables(days)
    assert "| ADA/BTC | 2 | 1 | 1 / 2 |" in out
    assert "| d1 | 4 | 1 | 1 | yes | 2 |" in out and "| d2 | 4 | 1 | 0 | NO | 2 |" in out


def test_windows_are_whole_utc_days_both_ends_included():
    assert windows(date(2018, 1, 29), date(2018, 1, 30)) == [
        ("2018-01-29T00:00", "2018-01-30T00:00"),
        ("2018-01-30T00:00", "2018-01-31T00:00"),
    ]
