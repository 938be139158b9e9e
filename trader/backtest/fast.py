"""The fast backtest: vectorised scans find the candles where a rule can fire; only those
are evaluated by the exact rules (``SymbolSim.on_point``), with the same results as
``reference.run_reference`` trade for trade.

Between two decisions a symbol's state changes only in ways that can be carried exactly
over a stretch of candles where nothing fires: the PEAK anchor becomes the highest high
(int ticks: exact), the FIXED anchor stays, a blocked drop's recheck ends, and the exit
rules' peak and trailing trigger follow the highest price (``update_exit_rules`` once
with it: its trigger is monotone in the peak). So:

1. From the symbol's next candle, scan a chunk of candles (doubling) with numpy for the
   first candle on which a rule *may* fire. **The scan is float** (trigger, TP, SL and
   trailing levels in float64 ticks) with a safety margin (1e-9 relative plus one tick,
   one second for max hold): it may flag a candle where nothing fires, never miss one.
2. Carry the state exactly over the skipped candles, then evaluate the flagged candle's
   points exactly, one at a time, in the global (time, symbol) order the reference uses.

The WINDOW anchor mode is not scanned (its rolling high would need the window's exact
expiry); a symbol in that mode is evaluated at every point, like the reference.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from trader.backtest.data import Series
from trader.backtest.reference import Progress, new_sims
from trader.backtest.sim import POINTS, SimConfig, SymbolSim, Trade, point
from trader.core.params import AnchorMode
from trader.core.rules import EntryRecheck, update_exit_rules

_REL = 1e-9
FIRST_CHUNK = 32
MAX_CHUNK = 1 << 20
F64 = npt.NDArray[np.float64]


@dataclass
class ScanStats:
    """What the fast path did (for the bench)."""

    scans: int = 0
    scanned_candles: int = 0
    exact_points: int = 0
    scan_s: float = 0.0
    exact_s: float = 0.0


def _first(mask: npt.NDArray[np.bool_]) -> int:
    """Index of the first True, or -1."""
    i = int(mask.argmax())
    return i if mask[i] else -1


def _entry_hits(sim: SymbolSim, j: int, e: int) -> int:
    """First candle in [j, e) whose low may reach the drop trigger, relative to j."""
    s, w = sim.series, sim.watch
    anchor = int(w.anchor / s.market.price_tick)
    factor = (1 - float(sim.cfg.params.drop_trigger_pct) / 100) * (1 + _REL)
    if sim.cfg.params.anchor_mode is AnchorMode.PEAK:
        # The anchor within a candle may already be its own high (conservative).
        anchors = np.maximum.accumulate(np.maximum(s.high[j:e], anchor))
        return _first(s.low[j:e] <= anchors * factor + 1)
    return _first(s.low[j:e] <= anchor * factor + 1)


def _exit_hits(sim: SymbolSim, j: int, e: int) -> int:
    """First candle in [j, e) on which an exit rule may fire, relative to j."""
    s, p, pos = sim.series, sim.cfg.params, sim.position
    assert pos is not None
    tick = s.market.price_tick
    entry = float(pos.entry_price / tick)
    low, high = s.low[j:e], s.high[j:e]
    hit = np.zeros(e - j, dtype=np.bool_)
    if p.stop_loss_pct:
        hit |= low <= entry * (1 - float(p.stop_loss_pct) / 100) * (1 + _REL) + 1
    if p.take_profit_pct:
        hit |= high >= entry * (1 + float(p.take_profit_pct) / 100) * (1 - _REL) - 1
    trigger = float(pos.rules.trailing.trigger / tick)
    if p.trailing_enabled:
        peaks: F64 = np.maximum.accumulate(
            np.maximum(high, float(pos.rules.trailing.peak / tick))
        ).astype(np.float64)
        armed = peaks >= entry * (1 + float(p.trailing_activation_pct) / 100) * (1 - _REL) - 1
        levels = np.where(armed, peaks * (1 - float(p.trailing_distance_pct) / 100), 0.0)
        hit |= low <= np.maximum(levels, trigger) * (1 + _REL) + 1
    elif trigger > 0:
        hit |= low <= trigger * (1 + _REL) + 1
    if p.max_hold_minutes > 0:
        due = pos.entry_ms + int(p.max_hold_minutes * 60_000) - 1000
        hit |= s.ts[j:e] + (s.step_ms - 1) >= due
    return _first(hit)


def _carry(sim: SymbolSim, j: int, c: int) -> None:
    """Carry the state exactly over candles [j, c), on which no rule fires."""
    if c <= j:
        return
    s = sim.series
    top = s.price(int(s.high[j:c].max()))
    if sim.position is not None:
        pos = sim.position
        pos.rules = update_exit_rules(pos.rules, top, pos.entry_price, sim.cfg.params)
        return
    w = sim.watch
    if sim.cfg.params.anchor_mode is AnchorMode.PEAK:
        w.anchor = max(w.anchor, top)
    w.recheck = EntryRecheck.NONE  # a point where the drop did not hold ends the episode


class _Cursor:
    """One symbol's next exact point (candle ``i``, point ``k``)."""

    def __init__(self, sim: SymbolSim, stats: ScanStats) -> None:
        self.sim, self.stats = sim, stats
        self.i, self.k = 0, 0
        self.chunk = FIRST_CHUNK

    def next_point(self) -> tuple[int, int] | None:
        """Advance to the next point that must be evaluated exactly (None: data done)."""
        sim, s = self.sim, self.sim.series
        if self.k >= POINTS:
            self.i, self.k = self.i + 1, 0
        if self.i >= len(s):
            return None
        if self.k > 0:
            return self.i, self.k
        if sim.position is None and sim.cooldown_until_ms > int(s.ts[self.i]) + s.step_ms - 1:
            # Nothing happens before the cooldown's end; the candle it ends in is exact
            # (its first point after the end sets a fresh anchor).
            ends = s.ts + (s.step_ms - 1)
            self.i = int(ends.searchsorted(sim.cooldown_until_ms, side="left"))
            self.chunk = FIRST_CHUNK
            return (self.i, 0) if self.i < len(s) else None
        if not self._scannable():
            return self.i, 0
        j = self.i
        while j < len(s):
            e = min(j + self.chunk, len(s))
            self.stats.scans += 1
            self.stats.scanned_candles += e - j
            rel = _exit_hits(sim, j, e) if sim.position is not None else _entry_hits(sim, j, e)
            if rel >= 0:
                _carry(sim, self.i, j + rel)
                self.i, self.chunk = j + rel, FIRST_CHUNK
                return self.i, 0
            _carry(sim, self.i, e)  # keep the carried state in step with the scan
            self.i = j = e
            self.chunk = min(self.chunk * 2, MAX_CHUNK)
        return None

    def _scannable(self) -> bool:
        sim = self.sim
        if sim.cfg.params.anchor_mode is AnchorMode.WINDOW and sim.position is None:
            return False
        # An unset anchor is taken from the next point: that point is evaluated exactly.
        return sim.position is not None or sim.watch.anchor > Decimal(0)


def run_fast(
    data: Mapping[str, Series],
    cfg: SimConfig,
    *,
    progress: Progress | None = None,
    stats: ScanStats | None = None,
) -> dict[str, list[Trade]]:
    """Trades per symbol, equal to ``run_reference``'s."""
    stats = stats if stats is not None else ScanStats()
    sims = new_sims(data, cfg)
    cursors = [_Cursor(sim, stats) for sim in sims]
    heap: list[tuple[int, int, int, int]] = []
    reported = [0] * len(sims)

    def schedule(n: int) -> None:
        t0 = time.perf_counter()
        at = cursors[n].next_point()
        stats.scan_s += time.perf_counter() - t0
        if at is not None:
            i, k = at
            heapq.heappush(heap, (point(sims[n].series, i, k)[0], n, i, k))
        if progress is not None:
            done = cursors[n].i if at is not None else len(sims[n].series)
            progress(done - reported[n])
            reported[n] = done

    for n in range(len(sims)):
        schedule(n)
    while heap:
        _, n, i, k = heapq.heappop(heap)
        t0 = time.perf_counter()
        sims[n].on_point(i, k)
        stats.exact_s += time.perf_counter() - t0
        stats.exact_points += 1
        cursors[n].k = k + 1
        schedule(n)
    return {sim.series.symbol: sim.trades for sim in sims}
