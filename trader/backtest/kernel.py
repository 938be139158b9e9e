"""The fast path's scans, compiled (numba): from a symbol's next point, the first point
where a rule *may* fire, one call per decision.

**Float, scan only.** Levels are float64 ticks widened by the caller's safety margin
(``fast._REL``, max hold one second early): a flagged point may not fire, a skipped one
cannot. Every flagged point is then evaluated by the exact Decimal rules
(``SymbolSim.on_point``); nothing here decides a trade.

Each kernel walks candles from candle ``i``, point ``k``: a candle is first tested as a
whole (its low against the level its own high could set: conservative, as a point's
running high is at most the candle's), and only a candle that may fire is walked point by
point (``sim.points``' order: open, low, high, close; open, high, low, close when it closes
below its open: ``candle_point``, the reference's too). It returns ``(i, k, t_ms,
ticks, pending)``: the point found, its time and price (``i == len(ts)``: none left) and
``pending``, the highest price (ticks) of the points skipped since the last exact one (0:
none), which the caller carries into the exact state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
_N_POINTS = 4


def candle_point(
    ts: I64, op: I64, hi: I64, lo: I64, cl: I64, step: int, i: int, k: int
) -> tuple[int, int]:
    """(time ms, price ticks) of point ``k`` of candle ``i``: the fill model's price path
    (plain Python here; compiled as ``_point`` for the kernels)."""
    t = ts[i]
    if k == 0:
        return t, op[i]
    if k == 3:
        return t + step - 1, cl[i]
    # open -> low -> high -> close, or open -> high -> low -> close for a down candle
    high = (k == 1) == (cl[i] < op[i])
    return t + k * (step // 3), hi[i] if high else lo[i]


def _entry(
    ts: I64,
    op: I64,
    hi: I64,
    lo: I64,
    cl: I64,
    step: int,
    i: int,
    k: int,
    pending: int,
    cooldown: int,
    anchor: float,
    factor: float,
    peak_mode: bool,
    every: bool,
) -> tuple[int, int, int, int, int]:
    """Flat: the first point seen (at or after ``cooldown``) where ``price <= anchor x
    factor`` may hold, the PEAK anchor (``peak_mode``) rising with the prices;
    ``every``: simply the first point seen (the WINDOW anchor, or a FIXED one to set)."""
    n = len(ts)
    while i < n:
        t = ts[i]
        if t + step - 1 < cooldown:
            # Nothing is seen before the cooldown's end: on to the candle it ends in.
            i = max(i + 1, int(np.searchsorted(ts, cooldown - (step - 1))))
            k = 0
            continue
        if k == 0 and not every and t >= cooldown:
            top = max(anchor, hi[i]) if peak_mode else anchor
            if not lo[i] <= top * factor:  # no point of this candle can fire
                anchor = top
                pending = max(pending, hi[i])
                i += 1
                continue
        while k < _N_POINTS:
            t_ms, ticks = point(ts, op, hi, lo, cl, step, i, k)
            if t_ms >= cooldown:
                if every:
                    return i, k, t_ms, ticks, pending
                if peak_mode and ticks > anchor:
                    anchor = ticks
                if ticks <= anchor * factor:
                    return i, k, t_ms, ticks, pending
                pending = max(pending, ticks)
            k += 1
        i += 1
        k = 0
    return n, 0, 0, 0, pending


def _exit(
    ts: I64,
    op: I64,
    hi: I64,
    lo: I64,
    cl: I64,
    step: int,
    i: int,
    k: int,
    pending: int,
    peak: float,
    trigger: float,
    rel: float,
    sl: float,
    tp: float,
    armed_at: float,
    keep: float,
    due_ms: int,
) -> tuple[int, int, int, int, int]:
    """Holding: the first point where the stop-loss (``price <= sl``), the take-profit
    (``>= tp``), the trailing stop (``<= trigger``, the trigger ``peak x keep`` once the
    peak reaches ``armed_at``, widened by ``rel``) or the max hold (``t >= due_ms``) may
    fire. ``peak`` and ``trigger`` include what was skipped before."""
    n = len(ts)
    while i < n:
        if k == 0:
            top = max(peak, hi[i])
            stop = max(sl, trigger * (1 + rel))
            if top >= armed_at:
                stop = max(stop, top * keep * (1 + rel))
            if not (lo[i] <= stop or hi[i] >= tp or ts[i] + step - 1 >= due_ms):
                peak = top
                if top >= armed_at:
                    trigger = max(trigger, top * keep)
                pending = max(pending, hi[i])
                i += 1
                continue
        while k < _N_POINTS:
            t_ms, ticks = point(ts, op, hi, lo, cl, step, i, k)
            if ticks > peak:
                peak = ticks
                if peak >= armed_at:
                    trigger = max(trigger, peak * keep)
            if ticks <= sl or ticks >= tp or ticks <= trigger * (1 + rel) or t_ms >= due_ms:
                return i, k, t_ms, ticks, pending
            pending = max(pending, ticks)
            k += 1
        i += 1
        k = 0
    return n, 0, 0, 0, pending


# Compiled once, cached on disk beside this module (``cache=True``): a later process loads
# the machine code instead of compiling (``warm``); forked workers inherit it.
_jit: Callable[..., Any] = numba.njit(cache=True, nogil=True)
# The kernels call the compiled one (numba resolves it by name); so does ``sim.point``
# (a tenth of the plain function's time on numpy arrays).
point: Callable[..., tuple[int, int]] = _jit(candle_point)
next_entry: Callable[..., tuple[int, int, int, int, int]] = _jit(_entry)
next_exit: Callable[..., tuple[int, int, int, int, int]] = _jit(_exit)


def warm() -> float:
    """Compile the kernels, or load them from the cache (a few µs when this process has
    them already); the seconds it took."""
    t0 = time.perf_counter()
    a = np.array([10, 11], dtype=np.int64)
    ts = np.array([0, 60_000], dtype=np.int64)
    next_entry(ts, a, a, a, a, 60_000, 0, 0, 0, -(2**62), 0.0, 0.97, True, False)
    next_exit(ts, a, a, a, a, 60_000, 0, 0, 0, 10.0, 0.0, 1e-9, 9.0, 12.0, 11.0, 0.99, 2**62)
    return time.perf_counter() - t0
