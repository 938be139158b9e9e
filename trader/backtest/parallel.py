"""The fast path on several cores, when the symbols cannot interact.

Symbols share only MAX_TRADES. With at least as many trade slots as symbols no entry can
ever be refused for a slot, so each symbol's trades are its own: the symbols run one
task each, in forked worker processes (the data is inherited, never pickled) and the trades are
the same as one process's. With fewer slots the symbols run in one process, on one
clock (``fast.run_fast``).
"""

from __future__ import annotations

import multiprocessing
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import fields
from decimal import Decimal
from enum import Enum

from trader.backtest import kernel
from trader.backtest.data import Series
from trader.backtest.fast import ScanStats, run_fast
from trader.backtest.reference import Progress
from trader.backtest.sim import Holding, Outcome, SimConfig, Trade
from trader.core.rules import ExitReason

_SHARED: tuple[Mapping[str, Series], SimConfig] | None = None
"""The data and config the forked workers read (set just before the fork)."""


_Row = tuple[object, ...]
_TRADE_FIELDS = [f.name for f in fields(Trade)]
_HINTS = typing.get_type_hints(Trade)
_DECODE: list[Callable[[typing.Any], object] | None] = [
    _HINTS[n] if _HINTS[n] in (Decimal, ExitReason) else None for n in _TRADE_FIELDS
]


def pack_trade(trade: Trade) -> _Row:
    """A trade as plain strings and ints: pickled several times faster than the
    dataclass of Decimals (the workers' results are a measurable part of the run)."""
    values = map(trade.__dict__.__getitem__, _TRADE_FIELDS)
    return tuple(
        str(v) if isinstance(v, Decimal) else v.value if isinstance(v, Enum) else v for v in values
    )


def unpack_trade(row: _Row) -> Trade:
    """``pack_trade``'s inverse (Decimals from their exact text)."""
    values = [v if decode is None else decode(v) for decode, v in zip(_DECODE, row, strict=True)]
    # As unpickling does: the dataclass's fields set directly (Trade has no __post_init__;
    # its frozen __init__ is a third of the cost).
    trade: Trade = object.__new__(Trade)
    trade.__dict__.update(zip(_TRADE_FIELDS, values, strict=True))
    return trade


_Packed = tuple[dict[str, list[_Row]], dict[str, Holding], ScanStats]


def _run_group(symbols: list[str]) -> _Packed:
    assert _SHARED is not None
    data, cfg = _SHARED
    stats = ScanStats()
    done = run_fast({s: data[s] for s in symbols}, cfg, stats=stats)
    packed = {s: [pack_trade(t) for t in trades] for s, trades in done.trades.items()}
    return packed, done.holdings, stats


def independent(data: Mapping[str, Series], cfg: SimConfig) -> bool:
    return cfg.params.max_trades >= len(data)


def run_parallel(
    data: Mapping[str, Series],
    cfg: SimConfig,
    *,
    workers: int | None = None,
    stats: ScanStats | None = None,
    progress: Progress | None = None,
) -> Outcome:
    """``fast.run_fast``'s outcome, on ``workers`` processes (default: the CPUs) when the
    symbols are independent (``progress``: a symbol's candles when it is done)."""
    global _SHARED
    n = min(workers or os.cpu_count() or 1, len(data))
    if (
        n <= 1
        or not independent(data, cfg)
        or "fork" not in multiprocessing.get_all_start_methods()
    ):
        return run_fast(data, cfg, stats=stats, progress=progress)
    cfg.check({s.market.quote for s in data.values()})
    _SHARED = (data, cfg)
    kernel.warm()  # compiled (or loaded from the cache) once, inherited by the workers
    trades: dict[str, list[Trade]] = {}
    holdings: dict[str, Holding] = {}
    try:
        with multiprocessing.get_context("fork").Pool(n) as pool:
            # One task per symbol, largest first: the workers balance themselves.
            tasks = [[s] for s in sorted(data, key=lambda s: (-len(data[s]), s))]
            for part, part_holdings, part_stats in pool.imap_unordered(_run_group, tasks):
                # Unpacked as they come, while the workers run the other symbols.
                trades.update({s: [unpack_trade(row) for row in rows] for s, rows in part.items()})
                holdings.update(part_holdings)
                if stats is not None:
                    for f in fields(ScanStats):
                        total = getattr(stats, f.name) + getattr(part_stats, f.name)
                        setattr(stats, f.name, total)
                if progress is not None:
                    progress(sum(len(data[s]) for s in part))
    finally:
        _SHARED = None
    return Outcome(dict(sorted(trades.items())), dict(sorted(holdings.items())))
