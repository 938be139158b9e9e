"""The fast path on several cores, when the symbols cannot interact.

Symbols share only MAX_TRADES. With at least as many trade slots as symbols no entry can
ever be refused for a slot, so each symbol's trades are its own: the symbols run one
task each, and the trades are the same as one process's. The calling process is one of
the workers: it forks ``workers - 1`` helpers (the data is inherited, never pickled), and
every process takes the next symbol from one shared counter when it is free (largest
first), so they balance themselves and only the helpers' trades cross a process boundary
(as text: ``pack_trade``). With fewer slots the symbols run in one process, on one clock
(``fast.run_fast``).
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
import typing
from collections.abc import Mapping, Sequence
from dataclasses import fields
from decimal import Decimal
from multiprocessing import connection
from multiprocessing.connection import Connection
from operator import attrgetter

from trader.backtest import kernel
from trader.backtest.data import Series
from trader.backtest.fast import ScanStats, run_fast
from trader.backtest.reference import Progress
from trader.backtest.sim import Holding, Outcome, SimConfig, Trade
from trader.core.rules import ExitReason

_HINTS = typing.get_type_hints(Trade)
_DECIMALS = [f.name for f in fields(Trade) if _HINTS[f.name] is Decimal]
_PLAIN = [f.name for f in fields(Trade) if _HINTS[f.name] not in (Decimal, ExitReason)]
assert [n for n, hint in _HINTS.items() if hint is ExitReason] == ["reason"]
_decimals, _plain = attrgetter(*_DECIMALS), attrgetter(*_PLAIN)
_REASONS = {r.value: r for r in ExitReason}
_Row = tuple[tuple[object, ...], str, tuple[str, ...]]


def pack_trade(trade: Trade) -> _Row:
    """A trade as plain strings and ints: pickled several times faster than the
    dataclass of Decimals (the helpers' results are a measurable part of the run)."""
    return _plain(trade), trade.reason.value, tuple(map(str, _decimals(trade)))


def unpack_trade(row: _Row) -> Trade:
    """``pack_trade``'s inverse (Decimals from their exact text)."""
    plain, reason, decimals = row
    # As unpickling does: the dataclass's fields set directly (Trade has no __post_init__;
    # its frozen __init__ is a third of the cost).
    trade: Trade = object.__new__(Trade)
    values = trade.__dict__
    values.update(zip(_PLAIN, plain, strict=True))
    values["reason"] = _REASONS[reason]
    values.update(zip(_DECIMALS, map(Decimal, decimals), strict=True))
    return trade


def independent(data: Mapping[str, Series], cfg: SimConfig) -> bool:
    return cfg.params.max_trades >= len(data)


class _Counter(typing.Protocol):
    value: int

    def get_lock(self) -> typing.ContextManager[object]: ...


def _take(counter: _Counter) -> int:
    """The next task's index (shared by every process)."""
    with counter.get_lock():
        n = counter.value
        counter.value = n + 1
    return n


def _help(
    data: Mapping[str, Series],
    cfg: SimConfig,
    tasks: Sequence[str],
    counter: _Counter,
    out: Connection,
) -> None:
    """A forked helper: symbols from the shared counter until none is left, each result on
    its own pipe (one writer per pipe: a message is never interleaved with another's, and
    a helper that dies leaves only its pipe at EOF), then ``None``, its end marker."""
    try:
        while (n := _take(counter)) < len(tasks):
            symbol, stats = tasks[n], ScanStats()
            done = run_fast({symbol: data[symbol]}, cfg, stats=stats)
            rows = [pack_trade(t) for t in done.trades[symbol]]
            out.send((symbol, rows, done.holdings.get(symbol), stats))
        out.send(None)
    except BaseException:  # the caller raises it (a helper must never leave it waiting)
        out.send(traceback.format_exc())
    finally:
        out.close()


def run_parallel(
    data: Mapping[str, Series],
    cfg: SimConfig,
    *,
    workers: int | None = None,
    stats: ScanStats | None = None,
    progress: Progress | None = None,
) -> Outcome:
    """``fast.run_fast``'s outcome, on ``workers`` processes (default: the CPUs; this one
    included) when the symbols are independent (``progress``: a symbol's candles when it
    is done)."""
    n = min(workers or os.cpu_count() or 1, len(data))
    if (
        n <= 1
        or not independent(data, cfg)
        or "fork" not in multiprocessing.get_all_start_methods()
    ):
        return run_fast(data, cfg, stats=stats, progress=progress)
    cfg.check({s.market.quote for s in data.values()})
    kernel.warm()  # compiled (or loaded from the cache) once, inherited by the helpers
    tasks = sorted(data, key=lambda s: (-len(data[s]), s))
    ctx = multiprocessing.get_context("fork")
    counter = typing.cast(_Counter, ctx.Value("i", 0))
    busy: dict[Connection, multiprocessing.process.BaseProcess] = {}
    for _ in range(n - 1):
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_help, args=(data, cfg, tasks, counter, send), daemon=True)
        proc.start()
        # Closed here before the next fork: only its helper holds it, so its EOF is that
        # helper's end (with or without its end marker).
        send.close()
        busy[receive] = proc
    helpers, pipes = list(busy.values()), list(busy)
    trades: dict[str, list[Trade]] = {}
    holdings: dict[str, Holding] = {}
    total = stats if stats is not None else ScanStats()

    def add(symbol: str, held: Holding | None, part: ScanStats) -> None:
        if held is not None:
            holdings[symbol] = held
        for f in fields(ScanStats):
            setattr(total, f.name, getattr(total, f.name) + getattr(part, f.name))
        if progress is not None:
            progress(len(data[symbol]))

    def collect(*, wait: bool) -> None:
        """The helpers' results so far (``wait``: until they are all done)."""
        while busy:
            ready = connection.wait(list(busy), timeout=None if wait else 0)
            if not ready:
                return
            for receive in typing.cast(list[Connection], ready):
                try:
                    msg = receive.recv()
                except EOFError:
                    busy[receive].join(timeout=5)
                    code = busy[receive].exitcode
                    raise RuntimeError(
                        f"a backtest worker process died (exit code {code})"
                    ) from None
                if msg is None:
                    del busy[receive]
                elif isinstance(msg, str):
                    raise RuntimeError(f"a backtest worker failed:\n{msg}")
                else:
                    symbol, rows, held, part = msg
                    trades[symbol] = [unpack_trade(row) for row in rows]
                    add(symbol, held, part)

    try:
        while (i := _take(counter)) < len(tasks):
            symbol, part = tasks[i], ScanStats()
            done = run_fast({symbol: data[symbol]}, cfg, stats=part)
            trades[symbol] = done.trades[symbol]
            add(symbol, done.holdings.get(symbol), part)
            collect(wait=False)
        collect(wait=True)
    except BaseException:
        for helper in helpers:
            helper.kill()  # their results are no longer wanted
        raise
    finally:
        for receive in pipes:
            receive.close()
        for helper in helpers:
            helper.join(timeout=5)
            if helper.is_alive():
                helper.kill()
    return Outcome(dict(sorted(trades.items())), dict(sorted(holdings.items())))
