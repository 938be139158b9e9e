"""The fast backtest: vectorised scans find the candles where a rule can fire; only those
are evaluated by the exact rules (``SymbolSim.on_point``), with the same results as
``reference.run_reference`` trade for trade.

Between two decisions a symbol's state changes only in ways that can be carried exactly
over a stretch of candles where nothing fires: the PEAK anchor becomes the highest high
(int ticks: exact), the FIXED anchor stays, a blocked drop's recheck ends, and the exit
rules' peak and trailing trigger follow the highest price (``update_exit_rules`` once
with it, in the next exact point's own step: ``on_point``'s ``seen_high``; the trigger is
monotone in the peak). So:

1. From the symbol's next candle, scan a chunk of candles (twice the last such distance,
   then doubling; for a position, up to the candle its max hold falls due in) with numpy
   for the first candle on which a rule *may* fire. **The scan is float** (trigger, TP, SL and
   trailing levels in float64 ticks) with a safety margin (1e-9 relative plus one tick,
   one second for max hold): it may flag a candle where nothing fires, never miss one.
2. Carry the state exactly over the skipped candles, then evaluate the flagged candle's
   points exactly, one at a time, in the global (time, symbol) order the reference uses.

The WINDOW anchor mode is not scanned (its rolling high would need the window's exact
expiry); a symbol in that mode is evaluated at every point, like the reference.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from trader.backtest.data import Series
from trader.backtest.reference import Progress, new_sims
from trader.backtest.sim import POINTS, Outcome, SimConfig, SymbolSim, outcome, points
from trader.core.params import AnchorMode, TraderParams
from trader.core.rules import EntryRecheck

_REL = 1e-9
FIRST_CHUNK = 512
MAX_CHUNK = 1 << 20
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


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
    keep_margin: float
    """``keep`` widened by the margin (a trailing trigger from a float peak)."""
    due_ms: int
    """A point at or after this may be past the max hold (max int: off)."""


@dataclass(frozen=True)
class _Rates:
    """The parameters' exit levels as float factors of the entry price, margins included
    (once per symbol: a position's levels are then three products)."""

    sl: float
    tp: float
    armed_at: float
    keep: float
    keep_margin: float
    hold_ms: int
    """Max hold less one second of margin (-1: off)."""

    @classmethod
    def of(cls, p: TraderParams) -> _Rates:
        inf = float("inf")
        keep = 1 - float(p.trailing_distance_pct) / 100
        return cls(
            sl=(1 - float(p.stop_loss_pct) / 100) * (1 + _REL) if p.stop_loss_pct else -inf,
            tp=(1 + float(p.take_profit_pct) / 100) * (1 - _REL) if p.take_profit_pct else inf,
            armed_at=(1 + float(p.trailing_activation_pct) / 100) * (1 - _REL)
            if p.trailing_enabled
            else inf,
            keep=keep,
            keep_margin=keep * (1 + _REL),
            hold_ms=int(p.max_hold_minutes * 60_000) - 1000 if p.max_hold_minutes > 0 else -1,
        )

    def levels(self, entry: float, entry_ms: int) -> _Levels:
        """The levels of a position bought at ``entry`` (float ticks) at ``entry_ms``."""
        return _Levels(
            sl=entry * self.sl,
            tp=entry * self.tp,
            armed_at=entry * self.armed_at,
            keep=self.keep,
            keep_margin=self.keep_margin,
            due_ms=entry_ms + self.hold_ms if self.hold_ms >= 0 else 2**62,
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
        self.points: list[tuple[int, int]] | None = None  # candle ``i``'s: walk them
        self.peak_mode = sim.cfg.params.anchor_mode is AnchorMode.PEAK
        self.scanned = sim.cfg.params.anchor_mode is not AnchorMode.WINDOW
        self.tick = sim.series.market.price_tick
        self.factor = (1 - float(sim.cfg.params.drop_trigger_pct) / 100) * (1 + _REL)
        self.rates = _Rates.of(sim.cfg.params)
        self._anchor_of: Decimal | None = None
        self._anchor_ticks = 0.0
        # low / factor: the entry test ``low <= anchor x factor`` as one comparison (float,
        # the factor's margin dwarfs the division's rounding)
        self.low_div: F64 | None = sim.series.low / self.factor if self.scanned else None
        self._levels: tuple[object, _Levels] | None = None
        self._rules: tuple[object, float, float] | None = None

    # --- the exact state, carried ---------------------------------------------------------
    def flush(self) -> int:
        """Carry the exact state over the skipped points (no rule fired on any of them).
        For a position, return their highest price (ticks; 0: none) for ``on_point``'s
        exit-rules step (``seen_high``)."""
        pending, self.pending = self.pending, 0
        sim = self.sim
        if not pending or sim.position is not None:
            return pending
        w = sim.watch
        if self.peak_mode:  # (a FIXED anchor is set before any point is skipped)
            w.anchor = max(w.anchor, sim.series.price(pending))
        w.recheck = EntryRecheck.NONE  # a point where the drop did not hold ends the episode
        return 0

    def _anchor(self) -> float:
        """The anchor with the skipped points, in ticks (0: unset)."""
        anchor = self.sim.watch.anchor
        if anchor is not self._anchor_of:
            self._anchor_of, self._anchor_ticks = anchor, float(anchor / self.tick)
        a = self._anchor_ticks
        return max(a, self.pending) if self.peak_mode else a

    def _exit(self) -> tuple[_Levels, float, float]:
        """(levels, peak, trailing trigger) in float ticks, the skipped points included."""
        pos = self.sim.position
        assert pos is not None
        if self._levels is None or self._levels[0] is not pos:
            entry = float(pos.entry_price / self.tick)
            self._levels = (pos, self.rates.levels(entry, pos.entry_ms))
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

    # --- a stretch of candles: the first that may fire ------------------------------------
    def _entry_hits(self, j: int, e: int) -> int:
        s = self.sim.series
        if self.peak_mode:
            # Within a candle the anchor may already be its own high (conservative).
            assert self.low_div is not None
            # The running high in int ticks, from the anchor (rounded up: conservative).
            anchors = np.maximum.accumulate(s.high[j:e])
            np.maximum(anchors, math.ceil(self._anchor()), out=anchors)
            rel = _first(self.low_div[j:e] <= anchors)
            self._skipped(anchors, rel)
            return rel
        assert self.low_div is not None
        rel = _first(self.low_div[j:e] <= self._anchor())
        self._skip(j, j + rel if rel >= 0 else e)
        return rel

    def _exit_hits(self, j: int, e: int, due_i: int) -> int:
        """The first candle in [j, e) where an exit may fire; ``due_i``: the first candle
        that may be past the max hold."""
        s = self.sim.series
        levels, peak, trigger = self._exit()
        low, high = s.low[j:e], s.high[j:e]
        # Below the highest stop (stop-loss, or the trailing trigger as the peak rises) or
        # at/above the take-profit.
        floor = max(levels.sl, trigger * (1 + _REL))
        peaks = np.maximum.accumulate(np.maximum(high, peak))
        if levels.armed_at < float("inf"):
            stop = np.where(peaks >= levels.armed_at, peaks * levels.keep_margin, floor)
            hit = (low <= np.maximum(stop, floor)) | (high >= levels.tp)
        else:
            hit = (low <= floor) | (high >= levels.tp)
        if j <= due_i < e:
            hit[due_i - j] = True
        rel = _first(hit)
        self._skipped(peaks, rel)
        return rel

    def _skipped(self, tops: F64 | I64, rel: int) -> None:
        """Remember the highest of the skipped candles: ``tops`` is the running maximum of
        the highs (with the current anchor or peak, which ``flush`` leaves unchanged);
        ``rel``: the first candle not skipped, -1: none."""
        if rel != 0:
            self.pending = max(self.pending, int(tops[rel - 1 if rel > 0 else -1]))

    def _scan(self) -> bool:
        """Move ``i`` to the next candle that may fire (False: none is left)."""
        sim, s = self.sim, self.sim.series
        holding = sim.position is not None
        if not holding and sim.cooldown_until_ms > int(s.ts[self.i]) + s.step_ms - 1:
            # Nothing is seen before the cooldown's end: skip to the candle it ends in.
            first_ts = sim.cooldown_until_ms - (s.step_ms - 1)
            self.i = int(s.ts.searchsorted(first_ts, side="left"))
            return self.i < self.n
        if not holding and (not self.scanned or self._anchor() <= 0):
            return True  # the window anchor, or a fresh anchor: walked point by point
        end, due_i = self.n, self.n
        if holding:
            due_ms = self._exit()[0].due_ms
            if due_ms < 2**62:
                # The max hold fires by its due time: no need to scan past it.
                due_i = int(s.ts.searchsorted(due_ms - (s.step_ms - 1), side="left"))
                due_i = max(due_i, self.i)  # (a walked candle past it would have fired)
                end = min(end, due_i + 1)
        # The first chunk is twice the last distance to an entry candidate, then doubling:
        # most stretches take one scan; a position's stretch up to its max hold is one.
        start, j = self.i, self.i
        chunk = end - j if end < self.n else self.guess[holding]
        while j < end:
            e = min(j + chunk, end)
            self.stats.scans += 1
            self.stats.scanned_candles += e - j
            rel = self._exit_hits(j, e, due_i) if holding else self._entry_hits(j, e)
            if rel >= 0:
                self.i = j + rel
                self.guess[holding] = min(max(2 * (self.i - start) + 16, 64), MAX_CHUNK)
                return True
            self.i = j = e
            chunk = min(chunk * 2, MAX_CHUNK)
        return False

    def _skip(self, j: int, c: int) -> None:
        if c > j:
            self.pending = max(self.pending, int(self.sim.series.high[j:c].max()))

    def next_point(self) -> tuple[int, int, int, int] | None:
        """Advance to the next point that must be evaluated exactly: (time ms, candle,
        point, the skipped points' highest price for ``on_point``), None when the data is
        done; the state is carried exactly up to it."""
        sim = self.sim
        while True:
            if self.points is None or self.k >= POINTS:
                if self.points is not None:
                    self.i, self.k, self.points = self.i + 1, 0, None
                if self.i >= self.n or not self._scan():
                    return None
                self.points = points(sim.series, self.i)
            if sim.position is None:
                k = self._walk_entry(self.points)
            else:
                k = self._walk_exit(self.points)
            if k < POINTS:
                self.k = k
                return self.points[k][0], self.i, k, self.flush()
            self.k = POINTS

    def _walk_entry(self, pts: list[tuple[int, int]]) -> int:
        """The first point from ``k`` on where the drop may fire (POINTS: none), the
        skipped ones remembered in ``pending``."""
        sim, start = self.sim, self.k
        cooldown = sim.cooldown_until_ms
        if not self.scanned or (not self.peak_mode and sim.watch.anchor <= 0):
            # The window anchor, or a FIXED anchor still to be set: every point it sees.
            while start < POINTS and pts[start][0] < cooldown:
                start += 1
            return start
        anchor, factor, pending = self._anchor(), self.factor, self.pending
        for k in range(start, POINTS):
            t_ms, ticks = pts[k]
            if t_ms < cooldown:
                continue  # not seen at all (cooling down)
            if ticks > anchor and self.peak_mode:
                anchor = ticks
            if ticks <= anchor * factor:
                self.pending = pending
                return k
            if ticks > pending:
                pending = ticks
        self.pending = pending
        return POINTS

    def _walk_exit(self, pts: list[tuple[int, int]]) -> int:
        """The first point from ``k`` on where an exit may fire (POINTS: none)."""
        levels, peak, trigger = self._exit()
        pending = self.pending
        for k in range(self.k, POINTS):
            t_ms, ticks = pts[k]
            if ticks > peak:
                peak = ticks
                if peak >= levels.armed_at and peak * levels.keep > trigger:
                    trigger = peak * levels.keep
            if (
                ticks <= levels.sl
                or ticks >= levels.tp
                or ticks <= trigger * (1 + _REL)
                or t_ms >= levels.due_ms
            ):
                self.pending = pending
                return k
            if ticks > pending:
                pending = ticks
        self.pending = pending
        return POINTS


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
    if len(sims) == 1 and progress is None:
        _run_one(sims[0], cursors[0], stats)  # no clock to share
        return outcome(sims)
    heap: list[tuple[int, int, int, int, int]] = []
    reported = [0] * len(sims)

    def schedule(n: int) -> None:
        t0 = time.perf_counter()
        at = cursors[n].next_point()
        stats.scan_s += time.perf_counter() - t0
        if at is not None:
            heapq.heappush(heap, (at[0], n, at[1], at[2], at[3]))
        if progress is not None:
            done = cursors[n].i if at is not None else len(sims[n].series)
            progress(done - reported[n])
            reported[n] = done

    for n in range(len(sims)):
        schedule(n)
    while heap:
        _, n, i, k, seen = heapq.heappop(heap)
        t0 = time.perf_counter()
        sims[n].on_point(i, k, seen_high=seen)
        stats.exact_s += time.perf_counter() - t0
        stats.exact_points += 1
        cursors[n].k = k + 1
        schedule(n)
    return outcome(sims)


def _run_one(sim: SymbolSim, cursor: _Cursor, stats: ScanStats) -> None:
    """``run_fast``'s loop for one symbol."""
    clock = time.perf_counter
    scanned = clock()
    while (at := cursor.next_point()) is not None:
        found = clock()
        _, i, k, seen = at
        sim.on_point(i, k, seen_high=seen)
        cursor.k = k + 1
        stats.scan_s += found - scanned
        scanned = clock()
        stats.exact_s += scanned - found
        stats.exact_points += 1
    stats.scan_s += clock() - scanned
