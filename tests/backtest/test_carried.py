"""Nothing bought is dropped from the books: an exit that cannot sell (the position at the
bid is worth less than the market's minimum) carries the coins with their cost, as the
live engines do (trader/core/inventory.py); the next trade of the symbol sells them and
realizes their loss. What is still held at the end of the data is reported, marked to the
last close, outside the realized figures. Through the reference and the fast path.

The market: ABC/BTC, tick 1e-8, amount step 1, min cost 0.0001, fee 0.1 %, spread 10 bps,
budget 0.00021 BTC, drop 2 % off the peak, TP 3 %, SL 50 %, cooldown 15 min.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from trader.backtest.cli import open_table, table
from trader.backtest.data import Series, load_csv
from trader.backtest.fast import run_fast
from trader.backtest.reference import run_reference
from trader.backtest.report import build_report, write_files
from trader.backtest.sim import Holding, Outcome, SimConfig
from trader.core.params import TraderParams

D = Decimal
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
# minute offset, open, high, low, close (prices in 1e-8 BTC)
CANDLES = [
    (0, 10000, 10200, 10000, 10200),  # anchor 10200
    # down: 10200, 10200, 9990 <= 9996: buy 2 at the ask 9995 (0.0001999 + fee 0.0000001999)
    (5, 10200, 10200, 9990, 10000),
    # down: 10000, 10000, 4000 <= SL: 2 at the bid 3998 = 0.00007996 < min cost: unsellable
    (10, 10000, 10000, 4000, 4000),
    (15, 4000, 4000, 4000, 4000),  # (the data of the crash ends here)
    (20, 4000, 4000, 4000, 4000),
    (25, 4000, 4000, 4000, 4000),
    (30, 4000, 4000, 4000, 4000),  # the cooldown ends: anchor 4000
    # down: 4000, 4000, 3900 <= 3920: buy 5 at the ask 3902; the carried 2 join: 7 held
    (35, 4000, 4000, 3900, 3900),
    # up: 3900, 3900, 4100 >= TP 4019.06: sell 7 at the bid 4097
    (40, 3900, 4100, 3900, 4100),
]
PARAMS = TraderParams(
    quote_budgets={"BTC": D("0.00021")},
    drop_trigger_pct=D(2),
    take_profit_pct=D(3),
    stop_loss_pct=D(50),
    trailing_enabled=False,
    max_hold_minutes=D(0),
    cooldown_minutes=D(15),
)
CFG = SimConfig(PARAMS, spread_bps=D(10), fee_rate=D("0.001"))
FIRST_COST, FIRST_FEE = D("0.0001999"), D("0.0000001999")
Runner = Callable[[dict[str, Series], SimConfig], Outcome]
RUNNERS = [run_reference, run_fast]


def _series(tmp_path: Path, candles: int) -> dict[str, Series]:
    lines = ["date,open,high,low,close,volume"]
    for minute, *prices in CANDLES[:candles]:
        when = f"2024-01-01 00:{minute:02d}:00+00:00"
        lines.append(",".join([when, *(f"{p * D('1e-8'):.8f}" for p in prices), "1"]))
    path = tmp_path / "ABC_BTC-5m.csv"
    path.write_text("\n".join(lines) + "\n")
    return {"ABC/BTC": load_csv(path)}


@pytest.mark.parametrize("runner", RUNNERS)
def test_unsellable_exit_hides_the_loss(tmp_path: Path, runner: Runner) -> None:
    data = _series(tmp_path, 4)
    outcome = runner(data, CFG)
    [t] = outcome.trades["ABC/BTC"]
    # Nothing sold: the trade closes at net 0 with the coins and their cost carried; its
    # fees are those in its net (none: the entry fee goes with the carried coins).
    assert (t.amount, t.carried_amount, t.carried_cost) == (D(0), D(2), FIRST_COST + FIRST_FEE)
    assert (t.gross, t.fees, t.net) == (D(0), D(0), D(0)) and t.net == t.gross - t.fees
    assert outcome.holdings == {
        "ABC/BTC": Holding(
            symbol="ABC/BTC",
            quote="BTC",
            amount=D(2),
            cost=FIRST_COST,
            entry_fee=FIRST_FEE,
            opened_ms=None,
            entry_price=D("0.00009995"),
        )
    }
    report = build_report(data, outcome)
    (total,) = report.totals
    assert total.realized == 0  # realized-only ...
    # ... and the loss is shown: 2 at the last close 4000 against what they cost.
    [held] = report.holdings
    assert (held.amount, held.cost, held.mark_price) == (D(2), D("0.0002000999"), D("0.00004"))
    assert held.unrealized == total.unrealized == D("0.00008") - D("0.0002000999")
    assert total.realized + total.unrealized < D("-0.0001"), "the loss is reported"
    assert total.exposure == D("0.25")  # the trade's 5 min of 20; inventory is no position


@pytest.mark.parametrize("runner", RUNNERS)
def test_the_next_trade_sells_the_carried_coins_and_realizes_their_loss(
    tmp_path: Path, runner: Runner
) -> None:
    data = _series(tmp_path, len(CANDLES))
    outcome = runner(data, CFG)
    first, second = outcome.trades["ABC/BTC"]
    assert first.carried_amount == 2 and outcome.holdings == {}
    assert (second.amount, second.inventory_in_amount) == (D(7), D(2))
    assert second.inventory_in_cost == first.carried_cost
    assert second.entry_price == D("0.00003902")  # the exit levels are this buy's
    # Sold 7 at 4097 against 5 bought at 3902 and the 2 carried at 9995, fees on both.
    proceeds, cost = 7 * D("0.00004097"), 5 * D("0.00003902") + FIRST_COST
    fees = 5 * D("0.00003902") * D("0.001") + FIRST_FEE + proceeds * D("0.001")
    assert (second.gross, second.fees) == (proceeds - cost, fees)
    assert second.net == proceeds - cost - fees == second.gross - second.fees
    (total,) = build_report(data, outcome).totals
    assert total.realized == D("-0.00010889179") == proceeds - cost - fees
    assert (total.open_cost, total.unrealized) == (D(0), D(0))


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_position_open_at_the_end_is_reported(tmp_path: Path, runner: Runner) -> None:
    data = _series(tmp_path, 2)  # bought at 5 min + 200 s, the data ends at 10 min
    outcome = runner(data, CFG)
    assert outcome.trades == {"ABC/BTC": []}
    report = build_report(data, outcome)
    (total,) = report.totals
    assert (total.trades, total.realized, total.fees) == (0, D(0), D(0))
    assert total.exposure == D(100) / D(600)  # held to the end of the data
    [held] = report.holdings
    assert held.opened_ms == T0 + 500_000
    assert (held.amount, held.entry_price, held.mark_price) == (D(2), D("0.00009995"), D("0.0001"))
    assert held.unrealized == D("0.0002") - FIRST_COST - FIRST_FEE == total.unrealized
    _, json_path = write_files(report, tmp_path / "out")
    doc = json.loads(json_path.read_text())
    assert doc["open"] == [
        {
            "symbol": "ABC/BTC",
            "quote": "BTC",
            "amount": "2",
            "entry_price": "0.00009995",
            "cost": "0.00020009990",
            "mark_price": "0.00010000",
            "value": "0.00020000",
            "unrealized_pnl": str(held.unrealized),
            "opened_time": "2024-01-01T00:08:20.000+00:00",
        }
    ]
    assert [Decimal(f["unrealized_pnl"]) for f in doc["totals"]] == [held.unrealized]
    out = io.StringIO()
    console = Console(file=out, width=200)
    console.print(table(report))
    console.print(open_table(report))
    text = out.getvalue()
    assert "-0.00000010" in text and "2024-01-01T00:08:20" in text
