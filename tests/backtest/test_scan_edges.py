"""The fast path's scan boundaries, on hand-built candles: long stretches skipped whole
(the anchor and the trailing peak carried over thousands of candles with no candidate,
only the deciding points evaluated exactly), a max hold that fires on its due candle,
after a gap, or loses to a stop-loss in that same candle; and the candle's points as the
scan walks them equal to the reference's."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from trader.backtest import kernel
from trader.backtest.data import Series
from trader.backtest.fast import ScanStats, run_fast
from trader.backtest.reference import run_reference
from trader.backtest.sim import POINTS, Outcome, SimConfig, Trade, point
from trader.core.params import TraderParams
from trader.core.rules import ExitReason
from trader.exchange.replay import replay_market

MIN = 60_000
STRETCH = 512
T0 = 1_704_067_200_000
Candle = tuple[int, int, int, int]


def _series(candles: list[Candle], minutes: list[int] | None = None, step: int = MIN) -> Series:
    """``candles`` (open, high, low, close in 1e-8 ticks) at ``minutes`` (default: one a
    minute, no gap)."""
    at = minutes if minutes is not None else list(range(len(candles)))
    cols = np.array(candles, dtype=np.int64).T
    return Series(
        symbol="ABC/BTC",
        market=replay_market("ABC/BTC", Decimal("0.0001")),
        step_ms=step,
        ts=T0 + np.array(at, dtype=np.int64) * MIN,
        open=cols[0].copy(),
        high=cols[1].copy(),
        low=cols[2].copy(),
        close=cols[3].copy(),
        volume=np.ones(len(candles), dtype=np.int64),
    )


def _params(**kw: object) -> TraderParams:
    base: dict[str, object] = {
        "quote_budgets": {"BTC": Decimal("0.002")},
        "drop_trigger_pct": Decimal(2),
        "take_profit_pct": Decimal(3),
        "stop_loss_pct": Decimal(2),
        "trailing_enabled": False,
        "max_hold_minutes": Decimal(0),
        "cooldown_minutes": Decimal(0),
    }
    return TraderParams.model_validate(base | kw)


def _both(series: Series, params: TraderParams) -> tuple[list[Trade], ScanStats]:
    cfg, stats = SimConfig(params), ScanStats()
    fast = run_fast({series.symbol: series}, cfg, stats=stats)
    reference = run_reference({series.symbol: series}, cfg)
    assert fast == reference
    assert isinstance(fast, Outcome)
    return fast.trades[series.symbol], stats


FLAT = (10_000, 10_000, 10_000, 10_000)


def test_a_candles_points_compiled_are_the_reference_points() -> None:
    up, down = (10_000, 10_300, 9_900, 10_200), (10_200, 10_300, 9_900, 10_000)
    for step in (MIN, 5 * MIN):
        s = _series([up, down, FLAT], step=step)
        cols = (s.ts, s.open, s.high, s.low, s.close, s.step_ms)
        for i in range(len(s)):
            for k in range(POINTS):
                plain = kernel.candle_point(*cols, i, k)  # as Python runs it
                assert point(s, i, k) == (int(plain[0]), int(plain[1]))
        third = step // 3
        t1 = T0 + MIN  # candle 1's open time, whatever the step
        times = [t1, t1 + third, t1 + 2 * third, t1 + step - 1]
        assert [point(s, 1, k)[0] for k in range(POINTS)] == times
    assert [point(s, 0, k)[1] for k in range(POINTS)] == [10_000, 9_900, 10_300, 10_200]
    assert [point(s, 1, k)[1] for k in range(POINTS)] == [10_200, 10_300, 9_900, 10_000]


def test_an_anchor_carried_over_chunks_without_a_candidate() -> None:
    """A rise of 3,585 candles, then 0.7 % below its top for 2,000 candles, then a low
    exactly 2 % off the top: the drop fires only if the anchor carried over the skipped
    candles is that top, to the tick."""
    n_up = 1 + STRETCH * (1 + 2 + 4)
    rise = [(10_000 + i, 10_001 + i, 10_000 + i, 10_001 + i) for i in range(n_up)]
    top = rise[-1][1]
    assert top == 13_585  # 2 % off: 13,313.3; 2 % off one tick less: 13,312.32
    below = [(top - 100,) * 4] * 2_000
    fall = [(top - 100, top - 100, 13_313, 13_400), (13_400, 13_400, 13_000, 13_000)]
    trades, stats = _both(_series(rise + below + fall), _params())
    assert stats.exact_points == 2  # the buy and the sell: every other point skipped
    assert len(trades) == 1
    assert trades[0].entry_ms == T0 + (n_up + 2_000) * MIN + 40_000  # the fall's low
    # bought at the ask of 13,313: 13,313 x 1.0005 = 13,319.7 rounded up; the stop-loss
    # (2 % off: 13,053.0) at the next candle's low
    assert trades[0].entry_price == Decimal("0.00013320")
    assert trades[0].reason is ExitReason.STOP_LOSS


def test_a_trailing_peak_carried_over_chunks_without_a_candidate() -> None:
    """No max hold: the exit scan doubles over a long holding; the peak is set early in a
    chunk that has no exit, the trailing stop fires thousands of candles later."""
    drop = [FLAT, (10_000, 10_000, 9_790, 9_790)]  # buys at 9,790 (+ spread)
    peak = [(9_790, 10_000, 9_790, 10_000)]  # +2.1 %: arms the trailing stop
    hold = [(10_000, 10_000, 9_990, 9_995)] * 5_000  # never 1 % below the peak
    fall = [(9_995, 9_995, 9_880, 9_880)]  # 1.2 % below the peak
    params = _params(
        take_profit_pct=Decimal(5),
        trailing_enabled=True,
        trailing_activation_pct=Decimal(1),
        trailing_distance_pct=Decimal(1),
    )
    trades, stats = _both(_series(drop + peak + hold + fall), params)
    assert [t.reason for t in trades] == [ExitReason.TRAILING_STOP]
    assert trades[0].exit_ms == T0 + (len(drop) + len(peak) + len(hold)) * MIN + 40_000
    assert stats.exact_points == 2  # the buy and the sell: every other point skipped


@pytest.mark.parametrize("gap", [0, 7])
def test_max_hold_fires_on_the_due_candle_at_the_windows_edge(gap: int) -> None:
    """Max hold 30 min, bought at minute 1 +40 s: due at minute 31 +40 s; the scan's
    window ends with the candle holding that time (or, after a gap over it, the first
    candle after it)."""
    candles = [FLAT, (10_000, 10_000, 9_790, 9_790)] + [(9_790,) * 4] * 60
    minutes = [m if m < 25 else m + gap for m in range(len(candles))]
    trades, _ = _both(_series(candles, minutes), _params(max_hold_minutes=Decimal(30)))
    first = trades[0]
    assert first.reason is ExitReason.MAX_HOLD
    entry = T0 + MIN + 40_000
    assert first.entry_ms == entry
    due = entry + 30 * MIN
    # Without a gap: the due candle's (minute 31) point at or after due: +40 s. With a gap
    # over it: the first point after it, the open of minute 25 + 7.
    assert first.exit_ms == (due if gap == 0 else T0 + (25 + gap) * MIN)


def test_a_stop_loss_in_the_due_candle_wins_over_the_max_hold() -> None:
    candles = [FLAT, (10_000, 10_000, 9_790, 9_790)] + [(9_790,) * 4] * 29
    # The due candle (minute 31) is an up candle: its low (+20 s) before the due time
    candles += [(9_790, 9_850, 9_500, 9_800)] + [(9_800,) * 4] * 5
    trades, _ = _both(_series(candles), _params(max_hold_minutes=Decimal(30)))
    assert trades[0].reason is ExitReason.STOP_LOSS
    assert trades[0].exit_ms == T0 + 31 * MIN + 20_000  # the low, before the due time
