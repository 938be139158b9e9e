"""The fast backtest: compiled scans find the points where a rule can fire; only those
are evaluated by the exact rules (``SymbolSim.on_point``), with the same results as
``reference.run_reference`` trade for trade.

Between two decisions a symbol's state changes only in ways that can be carried exactly
over a stretch of candles where nothing fires: the PEAK anchor becomes the highest high
(int ticks: exact), the FIXED anchor stays, a blocked drop's recheck ends, and the exit
rules' peak and trailing trigger follow the highest price (``update_exit_rules`` once
with it, in the next exact point's own step: ``on_point``'s ``seen_high``; the trigger is
monotone in the peak). So:

1. From the symbol's next point, one call of a compiled kernel (``kernel.next_entry`` /
   ``next_exit``) finds the first point on which a rule *may* fire, and the highest price
   it skipped. **The scan is float** (trigger, TP, SL and trailing levels in float64
   ticks) with a safety margin (1e-9 relative, one second for max hold): it may flag a
   point where nothing fires, never miss one.
2. Carry the state exactly over the skipped points, then evaluate the flagged point
   exactly, in the global (time, symbol) order the reference uses.

The WINDOW anchor mode is not scanned (its rolling high would need the window's exact
expiry); a symbol in that mode is evaluated at every point, like the reference.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from trader.backtest import kernel
from trader.backtest.data import Series
from trader.backtest.reference import Progress, new_sims
from trader.backtest.sim import Outcome, SimConfig, SymbolSim, outcome
from trader.core.params import AnchorMode, TraderParams
from trader.core.rules import EntryRecheck

_REL = 1e-9


@dataclass
class ScanStats:
    """What the fast path did (for the bench)."""

    scans: int = 0
    scanned_candles: int = 0
    exact_points: int = 0
    scan_s: float = 0.0
    exact_s: float = 0.0


class _Levels(NamedTuple):
    """A position's exit levels in float ticks, widened by the safety margin (scan only),
    in ``kernel.next_exit``'s order (passed as ``*levels``)."""

    sl: float
    """A price at or below this may hit the stop-loss (-inf: off)."""
    tp: float
    """At or above this may hit the take-profit (inf: off)."""
    armed_at: float
    """A peak at or above this may arm the trailing stop (inf: off)."""
    keep: float
    """1 - trailing distance (the trigger is widened by the margin in the scan)."""
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
            hold_ms=int(p.max_hold_minutes * 60_000) - 1000 if p.max_hold_minutes > 0 else -1,
        )

    def levels(self, entry: float, entry_ms: int) -> _Levels:
        """The levels of a position bought at ``entry`` (float ticks) at ``entry_ms``."""
        return _Levels(
            sl=entry * self.sl,
            tp=entry * self.tp,
            armed_at=entry * self.armed_at,
            keep=self.keep,
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
        self.pending = 0
        self.n = len(sim.series)
        s = sim.series
        self.cols = (s.ts, s.open, s.high, s.low, s.close, s.step_ms)  # the kernels' first
        self.peak_mode = sim.cfg.params.anchor_mode is AnchorMode.PEAK
        self.scanned = sim.cfg.params.anchor_mode is not AnchorMode.WINDOW
        self.tick = sim.series.market.price_tick
        self.factor = (1 - float(sim.cfg.params.drop_trigger_pct) / 100) * (1 + _REL)
        self.rates = _Rates.of(sim.cfg.params)
        self._anchor_of: Decimal | None = None
        self._anchor_ticks = 0.0
        self._levels: tuple[object, _Levels] | None = None
        self._rules: tuple[Decimal, Decimal, float, float] | None = None

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
        rules = self._rules
        if rules is None or rules[0] is not pos.peak or rules[1] is not pos.trigger:
            peak, trigger = float(pos.peak / self.tick), float(pos.trigger / self.tick)
            self._rules = rules = (pos.peak, pos.trigger, peak, trigger)
        peak, trigger = max(rules[2], self.pending), rules[3]
        if peak >= levels.armed_at:
            trigger = max(trigger, peak * levels.keep)
        return levels, peak, trigger

    # --- the next point that may fire: one compiled scan ---------------------------------
    def next_point(self) -> tuple[int, int, int, int, int] | None:
        """Advance to the next point that must be evaluated exactly: (time ms, candle,
        point, price ticks, the skipped points' highest price for ``on_price``), None when
        the data is done; the state is carried exactly up to it."""
        sim = self.sim
        if sim.position is not None:
            levels, peak, trigger = self._exit()
            i, k, t_ms, ticks, self.pending = kernel.next_exit(
                *self.cols, self.i, self.k, self.pending, peak, trigger, _REL, *levels
            )
        else:
            # The window anchor, or a FIXED anchor still to be set: every point it sees.
            every = not self.scanned or (not self.peak_mode and sim.watch.anchor <= 0)
            i, k, t_ms, ticks, self.pending = kernel.next_entry(
                *self.cols, self.i, self.k, self.pending,
                sim.cooldown_until_ms, self._anchor(), self.factor, self.peak_mode, every,
            )  # fmt: skip
        self.stats.scans += 1
        self.stats.scanned_candles += i - self.i
        self.i, self.k = i, k
        if i >= self.n:
            return None
        return t_ms, i, k, ticks, self.flush()


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
    heap: list[tuple[int, int, int, int, int, int]] = []
    reported = [0] * len(sims)

    def schedule(n: int) -> None:
        t0 = time.perf_counter()
        at = cursors[n].next_point()
        stats.scan_s += time.perf_counter() - t0
        if at is not None:
            t_ms, i, k, ticks, seen = at
            heapq.heappush(heap, (t_ms, n, i, k, ticks, seen))
        if progress is not None:
            done = cursors[n].i if at is not None else len(sims[n].series)
            progress(done - reported[n])
            reported[n] = done

    for n in range(len(sims)):
        schedule(n)
    while heap:
        t_ms, n, i, k, ticks, seen = heapq.heappop(heap)
        t0 = time.perf_counter()
        sims[n].on_price(i, t_ms, ticks, seen_high=seen)
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
        t_ms, i, k, ticks, seen = at
        sim.on_price(i, t_ms, ticks, seen_high=seen)
        cursor.k = k + 1
        stats.scan_s += found - scanned
        scanned = clock()
        stats.exact_s += scanned - found
        stats.exact_points += 1
    stats.scan_s += clock() - scanned
