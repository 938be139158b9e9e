"""The parity replay's market: the backtest's price points, one per ``point_ms`` of clock.

``ReplayFeed`` interpolates inside a candle; the backtest evaluates the fill model's four
points only (docs/backtesting.md, "The fill model"). Here the price is a step function:
the data's points (of every symbol, merged and sorted: the *grid*) are laid out one per
``point_ms`` from ``origin_ms`` on the engine's clock, and a symbol's price at an instant is
its last point at or before that grid point (before the data: its first open). So every
engine that reacts within ``point_ms`` of a point sees that point and fills at its book,
and the time-dependent parameters are scaled to the grid (``scaled_params``).
"""

from __future__ import annotations

import bisect
import copy
from decimal import Decimal
from pathlib import Path

from trader.core.params import TraderParams
from trader.exchange.replay import ReplayFeed


class PointFeed(ReplayFeed):
    def __init__(
        self,
        files: dict[str, tuple[Path, int]],
        *,
        start_ms: int,
        end_ms: int,
        origin_ms: int,
        point_ms: int,
    ) -> None:
        super().__init__(files, speed=1, start_ms=start_ms, origin_ms=origin_ms)
        grid: set[int] = set()
        for symbol, (_, step) in files.items():
            third = step // 3
            for t in self._series[symbol].starts:
                if start_ms <= t < end_ms:
                    grid.update((t, t + third, t + 2 * third, t + step - 1))
        if not grid:
            raise ValueError("no candles in the window")
        self.grid = sorted(grid)
        self.point_ms = point_ms

    def at_origin(self, origin_ms: int) -> PointFeed:
        """The same grid on another clock (the Temporal server's is offset from the wall)."""
        other = copy.copy(self)  # the series are shared, read-only
        other.origin_ms = origin_ms
        return other

    @property
    def end_ms(self) -> int:
        """The instant the last grid point ends."""
        return self.origin_ms + len(self.grid) * self.point_ms

    def index(self, ts_ms: int) -> int:
        """The grid point shown at ``ts_ms``."""
        return min(max((ts_ms - self.origin_ms) // self.point_ms, 0), len(self.grid) - 1)

    def replay_ms(self, ts_ms: int) -> int:
        return self.grid[self.index(ts_ms)]

    def _at(self, symbol: str, r: int) -> Decimal:
        s = self._series[symbol]
        return s.prices[max(bisect.bisect_right(s.times, r) - 1, 0)]


def scaled_params(params: TraderParams, *, point_ms: int, step_ms: int) -> TraderParams:
    """``params`` with cooldown, max hold and the window anchor's lookback on the grid's
    clock: a candle of ``step_ms`` is four points of ``point_ms``."""
    scale = Decimal(4 * point_ms) / Decimal(step_ms)  # clock seconds per data second
    return params.model_copy(
        update={
            "cooldown_minutes": params.cooldown_minutes * scale,
            "max_hold_minutes": params.max_hold_minutes * scale,
            "drop_lookback_seconds": max(1, int(params.drop_lookback_seconds * scale)),
        }
    )
