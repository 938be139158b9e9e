"""The per-candle exact backtest: every price point of every candle through ``SymbolSim``.

Symbols share MAX_TRADES, so they run on one clock: the points of all symbols are taken
in time order, and points at the same instant in symbol order (the symbols sorted by
name, as ``data.load_path`` returns them). This is the definition the fast path must
equal, trade for trade.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from trader.backtest.data import Series
from trader.backtest.sim import POINTS, Outcome, SimConfig, Slots, SymbolSim, outcome, point

Progress = Callable[[int], None]
"""Called with the number of candles just finished (for a progress bar)."""


def new_sims(data: Mapping[str, Series], cfg: SimConfig) -> list[SymbolSim]:
    cfg.check({s.market.quote for s in data.values()})
    slots = Slots(cfg.params.max_trades)
    return [SymbolSim(s, cfg, slots) for _, s in sorted(data.items())]


def run_reference(
    data: Mapping[str, Series], cfg: SimConfig, *, progress: Progress | None = None
) -> Outcome:
    """Trades and holdings per symbol, every point evaluated by the exact rules."""
    sims = new_sims(data, cfg)
    times, owner, index = [], [], []
    for n, sim in enumerate(sims):
        s = sim.series
        for k in range(POINTS):
            times.append(np.fromiter((point(s, i, k)[0] for i in range(len(s))), np.int64))
            owner.append(np.full(len(s), n, dtype=np.int64))
            index.append(np.arange(len(s), dtype=np.int64) * POINTS + k)
    t, o, ix = np.concatenate(times), np.concatenate(owner), np.concatenate(index)
    order = np.lexsort((ix, o, t))  # by time, then symbol, then point
    for done, (n_sym, flat) in enumerate(
        zip(o[order].tolist(), ix[order].tolist(), strict=True), start=1
    ):
        sims[n_sym].on_point(flat // POINTS, flat % POINTS)
        if progress is not None and done % (POINTS * 10_000) == 0:
            progress(10_000)
    return outcome(sims)
