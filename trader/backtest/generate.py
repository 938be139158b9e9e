"""Seeded random-walk candles (numpy) for tests and the bench: gaps and flat candles
included, prices as int ticks on the replay market's precision."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from trader.backtest.data import Series
from trader.exchange.replay import replay_market


def random_walk(
    symbol: str,
    n: int,
    *,
    seed: int,
    start_ticks: int = 5_000,
    step_ms: int = 60_000,
    vol_bps: float = 30.0,
    gap_rate: float = 0.01,
    flat_rate: float = 0.02,
    start_ms: int = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000,
) -> Series:
    """``n`` candles of a multiplicative random walk (``vol_bps`` per candle, tick 1e-8
    for a price below 1: ``start_ticks`` 5,000 is 5e-05, like the real BTC pairs)."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, vol_bps / 10_000, n)
    close = np.maximum(np.round(start_ticks * np.exp(np.cumsum(steps))), 2).astype(np.int64)
    open_ = np.concatenate(([start_ticks], close[:-1])).astype(np.int64)
    wick = np.abs(rng.normal(0.0, vol_bps / 20_000, (2, n)))
    high = np.maximum(np.maximum(open_, close), np.round(close * (1 + wick[0]))).astype(np.int64)
    low = np.minimum(np.minimum(open_, close), np.round(close * (1 - wick[1])))
    low = np.maximum(low, 1).astype(np.int64)
    flat = rng.random(n) < flat_rate  # no trades: one price all candle long
    open_[flat] = high[flat] = low[flat] = close[flat] = open_[flat]
    gaps = np.where(rng.random(n) < gap_rate, rng.integers(2, 30, n), 1)
    ts = start_ms + np.cumsum(gaps, dtype=np.int64) * step_ms
    volume = np.where(flat, 0, rng.integers(1, 10**12, n)).astype(np.int64)
    market = replay_market(symbol, start_ticks * Decimal("1e-8"))
    assert market.price_tick == Decimal("1e-8"), "random_walk is for prices below 1"
    return Series(
        symbol=symbol,
        market=market,
        step_ms=step_ms,
        ts=ts.astype(np.int64),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
    )
