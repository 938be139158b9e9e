"""The fast backtest: vectorised scans find the candles where a rule can fire; only those
are evaluated by the exact rules (``SymbolSim.on_point``), with the same results as
``reference.run_reference`` trade for trade.

Between two decisions a symbol's state changes only in ways that can be carried exactly
over a stretch of candles where nothing fires: the PEAK anchor becomes the highest high
(int ticks: exact), the FIXED anchor stays, a blocked drop's recheck ends, and the exit
rules' peak and trailing trigger follow the highest price (``update_exit_rules`` once
with it: its trigger is monotone in the peak). So:

1. From the symbol's next candle, scan a chunk of candles (twice the last such distance,
   then doubling) with numpy for the
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

import numpy as np
import numpy.typing as npt

from trader.backtest.data import Series
from trader.backtest.reference import Progress, new_sims
from trader.backtest.sim import POINTS, Outcome, SimConfig, SymbolSim, outcome, point
from trader.core.params import AnchorMode
from trader.core.rules import EntryRecheck, update_exit_rules

_REL = 1e-9
FIRST_CHUNK = 512
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


@dataclass(frozen=True)
class _Levels:
    """A position's exit levels in float ticks, widened by the safety margin (scan only)."""

    sl: float
    """A price at or below this may hit the stop-loss (-inf: off)."""
    tp: float
    """At or above this may hit the take-profit (inf: off)."""
    armed_at: float
    """A peak at or above this may arm the trailing stop (inf: off)."""
    keep: float
    """1 - trailing distance."""
    due_ms: int
    """A point at or after this may be past the max hold (max int: off)."""

    @classmethod
    def of(cls, sim: SymbolSim) -> _Levels:
        p, pos = sim.cfg.params, sim.position
        assert pos is not None
        entry = float(pos.entry_price / sim.series.market.price_tick)
        inf = float("inf")
        return cls(
            sl=entry * (1 - float(p.stop_loss_pct) / 100) * (1 + _REL) if p.stop_loss_pct else -inf,
            tp=entry * (1 + float(p.take_profit_pct) / 100) * (1 - _REL)
            if p.take_profit_pct
            else inf,
            armed_at=entry * (1 + float(p.trailing_activation_pct) / 100) * (1 - _REL)
            if p.trailing_enabled
            else inf,
            keep=1 - float(p.trailing_distance_pct) / 100,
            due_ms=pos.entry_ms + int(p.max_hold_minutes * 60_000) - 1000
            if p.max_hold_minutes > 0
            else 2**62,
        )


class _Cursor:
    """One symbol's next exact point (candle ``i``, point ``k``).

    ``pending`` is the highest price (ticks) of the points skipped since the last exact
    one (0: none): the exact state is carried over them lazily, in one step, right before
    the next exact point (``flush``). Every float value below is scan-only.
    """

    def __init__(self, sim: SymbolSim, stats: ScanStats) -> None:
        self.sim, self.stats = sim, stats
        self.i, self.k = 0, 0
        self.guess = {False: FIRST_CHUNK, True: FIRST_CHUNK}
        self.pending = 0
        self.n = len(sim.series)
        self.in_candle = False  # candle ``i`` is a candidate: walk its points
        self.peak_mode = sim.cfg.params.anchor_mode is AnchorMode.PEAK
        self.scanned = sim.cfg.params.anchor_mode is not AnchorMode.WINDOW
        self.tick = sim.series.market.price_tick
        self.factor = (1 - float(sim.cfg.params.drop_trigger_pct) / 100) * (1 + _REL)
        self._levels: tuple[object, _Levels] | None = None
        self._rules: tuple[object, float, float] | None = None

    # --- the exact state, carried ---------------------------------------------------------
    def flush(self) -> None:
        """Carry the exact state over the skipped points (no rule fired on any of them)."""
        if not self.pending:
            return
        sim, top = self.sim, self.sim.series.price(self.pending)
        self.pending = 0
        if sim.position is not None:
            pos = sim.position
            # One step with the highest price = the steps one by one: the peak is a max and
            # the trailing trigger is monotone in it.
            pos.rules = update_exit_rules(pos.rules, top, pos.entry_price, sim.cfg.params)
            return
        w = sim.watch
        if self.peak_mode:  # (a FIXED anchor is set before any point is skipped)
            w.anchor = max(w.anchor, top)
        w.recheck = EntryRecheck.NONE  # a point where the drop did not hold ends the episode

    def _anchor(self) -> float:
        """The anchor with the skipped points, in ticks (0: unset)."""
        a = float(self.sim.watch.anchor / self.tick)
        return max(a, self.pending) if self.peak_mode else a

    def _exit(self) -> tuple[_Levels, float, float]:
        """(levels, peak, trailing trigger) in float ticks, the skipped points included."""
        pos = self.sim.position
        assert pos is not None
        if self._levels is None or self._levels[0] is not pos:
            self._levels = (pos, _Levels.of(self.sim))
        levels = self._levels[1]
        if self._rules is None or self._rules[0] is not pos.rules:
            trailing = pos.rules.trailing
            self._rules = (
                pos.rules,
                float(trailing.peak / self.tick),
                float(trailing.trigger / self.tick),
            )
        peak, trigger = max(self._rules[1], self.pending), self._rules[2]
        if peak >= levels.armed_at:
            trigger = max(trigger, peak * levels.keep)
        return levels, peak, trigger

    # --- one point: may a rule fire? ------------------------------------------------------
    def _may_fire(self, t_ms: int, ticks: int) -> bool:
        sim = self.sim
        if sim.position is None:
            if not self.scanned or (not self.peak_mode and sim.watch.anchor <= 0):
                return True  # the window anchor, or a FIXED anchor still to be set
            anchor = max(self._anchor(), ticks) if self.peak_mode else self._anchor()
            return ticks <= anchor * self.factor
        levels, peak, trigger = self._exit()
        if max(peak, ticks) >= levels.armed_at:
            trigger = max(trigger, max(peak, ticks) * levels.keep)
        return (
            ticks <= levels.sl
            or ticks >= levels.tp
            or ticks <= trigger * (1 + _REL)
            or t_ms >= levels.due_ms
        )

    # --- a stretch of candles: the first that may fire ------------------------------------
    def _entry_hits(self, j: int, e: int) -> int:
        s = self.sim.series
        if self.peak_mode:
            # Within a candle the anchor may already be its own high (conservative).
            anchors = np.maximum.accumulate(np.maximum(s.high[j:e], self._anchor()))
            return _first(s.low[j:e] <= anchors * self.factor)
        return _first(s.low[j:e] <= self._anchor() * self.factor)

    def _exit_hits(self, j: int, e: int) -> int:
        s = self.sim.series
        levels, peak, trigger = self._exit()
        low, high = s.low[j:e], s.high[j:e]
        hit = (low <= levels.sl) | (high >= levels.tp)
        if levels.armed_at < float("inf"):
            peaks: F64 = np.maximum.accumulate(np.maximum(high, peak)).astype(np.float64)
            trail = np.where(peaks >= levels.armed_at, peaks * levels.keep, 0.0)
            hit |= low <= np.maximum(trail, trigger) * (1 + _REL)
        elif trigger > 0:
            hit |= low <= trigger * (1 + _REL)
        hit |= s.ts[j:e] + (s.step_ms - 1) >= levels.due_ms
        return _first(hit)

    def _scan(self) -> bool:
        """Move ``i`` to the next candle that may fire (False: none is left)."""
        sim, s = self.sim, self.sim.series
        if sim.position is None and sim.cooldown_until_ms > int(s.ts[self.i]) + s.step_ms - 1:
            # Nothing is seen before the cooldown's end: skip to the candle it ends in.
            first_ts = sim.cooldown_until_ms - (s.step_ms - 1)
            self.i = int(s.ts.searchsorted(first_ts, side="left"))
            return self.i < self.n
        if not self.scanned and sim.position is None:
            return True
        if sim.position is None and self._anchor() <= 0:
            return True  # a fresh anchor: its candle is walked point by point
        holding = sim.position is not None
        end = self.n
        if holding and self._exit()[0].due_ms < 2**62:
            # The max hold fires by its due time: no need to scan past it.
            due = self._exit()[0].due_ms - (s.step_ms - 1)
            end = min(end, int(s.ts.searchsorted(due, side="left")) + 1)
        # The first chunk is twice the last distance to a candidate (learned per phase),
        # then doubling: most stretches take one scan.
        start, j, chunk = self.i, self.i, self.guess[holding]
        while j < self.n:
            e = min(j + chunk, self.n)
            e = max(min(e, end), j + 1)
            self.stats.scans += 1
            self.stats.scanned_candles += e - j
            rel = self._exit_hits(j, e) if holding else self._entry_hits(j, e)
            if rel >= 0:
                self._skip(j, j + rel)
                self.i = j + rel
                self.guess[holding] = min(max(2 * (self.i - start) + 16, 64), MAX_CHUNK)
                return True
            self._skip(j, e)
            self.i = j = e
            chunk = min(chunk * 2, MAX_CHUNK)
        return False

    def _skip(self, j: int, c: int) -> None:
        if c > j:
            self.pending = max(self.pending, int(self.sim.series.high[j:c].max()))

    def next_point(self) -> tuple[int, int, int] | None:
        """Advance to the next point that must be evaluated exactly: (time ms, candle,
        point), None when the data is done; the state is carried exactly up to it."""
        sim, s, n = self.sim, self.sim.series, self.n
        while True:
            if self.k >= POINTS:
                self.i, self.k, self.in_candle = self.i + 1, 0, False
            if self.i >= n:
                return None
            if not self.in_candle:
                if not self._scan():
                    return None
                self.in_candle = True
            t_ms, ticks = point(s, self.i, self.k)
            if sim.position is None and t_ms < sim.cooldown_until_ms:
                self.k += 1  # not seen at all (cooling down)
            elif self._may_fire(t_ms, ticks):
                self.flush()
                return t_ms, self.i, self.k
            else:
                self.pending = max(self.pending, ticks)
                self.k += 1


def run_fast(
    data: Mapping[str, Series],
    cfg: SimConfig,
    *,
    progress: Progress | None = None,
    stats: ScanStats | None = None,
) -> Outcome:
    """Trades and holdings per symbol, equal to ``run_reference``'s."""
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
            heapq.heappush(heap, (at[0], n, at[1], at[2]))
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
    return outcome(sims)
