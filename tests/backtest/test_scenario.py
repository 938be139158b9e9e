"""A scenario computed by hand: two trades (a take-profit across a gap, a stop-loss after
a cooldown that ends inside a candle), through the reference and the fast path.

The market: ABC/BTC, tick 1e-8, amount step 1, min cost 0.0001 (the replay market for a
price of 1e-4), fee 0.1 %, spread 10 bps (bid = mid - 5 bps rounded down to the tick, ask
= mid + 5 bps rounded up), budget 0.002 BTC, drop 2 % off the peak, TP 3 %, SL 2 %, no
trailing stop, no max hold, cooldown 15 min. Points of a candle at t, t+100 s, t+200 s,
t+299.999 s: open, low, high, close when it closes at or above its open, else open, high,
low, close.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from trader.backtest.data import load_csv
from trader.backtest.fast import run_fast
from trader.backtest.reference import run_reference
from trader.backtest.report import build_report
from trader.backtest.sim import Outcome, SimConfig, Trade
from trader.core.params import TraderParams
from trader.core.rules import ExitReason

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
MIN5 = 300_000
# minute offset, open, high, low, close (prices in 1e-8 BTC)
CANDLES = [
    (0, 10000, 10200, 10000, 10200),  # up: 10000, 10000, 10200, 10200 -> anchor 10200
    (5, 10200, 10200, 9990, 10000),  # down: 10200, 10200, 9990 <= 9996 (2 % off): buy
    # 10 min: no candle (a gap)
    (15, 10100, 10300, 10050, 10250),  # up: 10100, 10050, 10300 >= TP 10294.85: sell
    (20, 10250, 10250, 10250, 10250),  # flat, cooling down
    (25, 10250, 10250, 10250, 10250),  # flat, cooling down
    (30, 10250, 10250, 9000, 9100),  # down: cooldown ends at +200 s: anchor 9000, 9100
    (35, 9100, 9100, 8900, 8900),  # down: 8900 <= 8918 (2 % off 9100): buy
    (40, 8800, 8800, 8700, 8750),  # down: 8700 <= SL 8726.9: sell
]


def _write(path: Path) -> Path:
    lines = ["date,open,high,low,close,volume"]
    for minute, *prices in CANDLES:
        when = f"2024-01-01 00:{minute:02d}:00+00:00"
        lines.append(",".join([when, *(f"{p * Decimal('1e-8'):.8f}" for p in prices), "1"]))
    path.write_text("\n".join(lines) + "\n")
    return path


D = Decimal


def _trade(entry_min: int, exit_min: int, reason: ExitReason, *figures: str) -> Trade:
    """A trade bought at ``entry_min`` +200 s and sold at ``exit_min`` +200 s; figures:
    entry price, exit price, amount, entry fee, exit fee, gross, net."""
    entry, exit_, amount, entry_fee, exit_fee, gross, net = map(D, figures)
    return Trade(
        symbol="ABC/BTC",
        quote="BTC",
        entry_ms=T0 + entry_min * 60_000 + 200_000,
        exit_ms=T0 + exit_min * 60_000 + 200_000,
        entry_price=entry,
        exit_price=exit_,
        amount=amount,
        reason=reason,
        entry_fee=entry_fee,
        exit_fee=exit_fee,
        gross=gross,
        net=net,
        pct=net / (entry * amount + entry_fee) * 100,
    )


EXPECTED = [
    # Buy at 00:05 +200 s, mid 0.00009990: ask = round_up(0.00009990 * 1.0005) = 0.00009995;
    # 0.002 / 0.00009995 = 20.01 -> 20; cost 0.001999, fee 0.000001999.
    # TP = 0.00009995 * 1.03 = 0.0001029485; at 00:15 +200 s mid 0.00010300 reaches it;
    # bid = round_down(0.000103 * 0.9995) = 0.00010294; proceeds 20 * 0.00010294 = 0.0020588,
    # fee 0.0000020588; gross 0.0020588 - 0.001999 = 0.0000598;
    # net 0.0000598 - 0.000001999 - 0.0000020588 = 0.0000557422.
    _trade(
        5,
        15,
        ExitReason.TAKE_PROFIT,
        *("0.00009995", "0.00010294", "20", "0.000001999", "0.0000020588"),
        *("0.0000598", "0.0000557422"),
    ),
    # Cooldown until 00:15 +200 s + 15 min = 00:30 +200 s: the 00:30 candle's low 9000 is
    # the first price seen (fresh anchor), then 9100. Buy at 00:35 +200 s, mid 0.000089:
    # ask = round_up(0.000089 * 1.0005) = 0.00008905; 0.002 / 0.00008905 = 22.46 -> 22;
    # cost 0.0019591, fee 0.0000019591. SL = 0.00008905 * 0.98 = 0.000087269; at 00:40
    # +200 s mid 0.000087 is below it; bid = round_down(0.000087 * 0.9995) = 0.00008695;
    # proceeds 0.0019129, fee 0.0000019129; gross -0.0000462;
    # net -0.0000462 - 0.0000019591 - 0.0000019129 = -0.000050072.
    _trade(
        35,
        40,
        ExitReason.STOP_LOSS,
        *("0.00008905", "0.00008695", "22", "0.0000019591", "0.0000019129"),
        *("-0.0000462", "-0.000050072"),
    ),
]

PARAMS = TraderParams(
    quote_budgets={"BTC": D("0.002")},
    drop_trigger_pct=D(2),
    take_profit_pct=D(3),
    stop_loss_pct=D(2),
    trailing_enabled=False,
    max_hold_minutes=D(0),
    cooldown_minutes=D(15),
)


@pytest.mark.parametrize("runner", [run_reference, run_fast])
def test_the_hand_computed_trades_and_totals(tmp_path: Path, runner: object) -> None:
    series = load_csv(_write(tmp_path / "ABC_BTC-5m.csv"))
    cfg = SimConfig(PARAMS, spread_bps=D(10), fee_rate=D("0.001"))
    assert callable(runner)
    outcome = runner({"ABC/BTC": series}, cfg)
    assert outcome == Outcome({"ABC/BTC": EXPECTED}, {})
    report = build_report({"ABC/BTC": series}, outcome)
    (total,) = report.totals
    assert (total.trades, total.wins, total.win_rate) == (2, 1, D("0.5"))
    # 0.0000557422 - 0.000050072; fees 0.000001999 + 0.0000020588 + 0.0000019591 +
    # 0.0000019129; the drawdown is the second trade's loss from the first one's peak.
    assert total.realized == D("0.0000056702")
    assert total.fees == D("0.0000079298")
    assert total.max_drawdown == D("0.000050072")
    assert (total.best, total.worst) == (D("0.0000557422"), D("-0.000050072"))
    # Held 10 min + 5 min of the 45 min from the first candle's open to the last's end.
    assert total.exposure == D(900_000) / D(2_700_000)
    assert report.symbols[0].realized == total.realized
