"""Market data for the backtest: OHLCV CSVs and trade files as exact integer arrays.

Prices are parsed from the file's text as ``Decimal`` and rounded to the market's tick
(``ROUND_HALF_EVEN``, as the replay feed does), then kept as int64 *tick counts*: a price
is ``ticks * market.price_tick`` exactly, so running highs and peaks over numpy arrays are
exact, and the exact rules get their ``Decimal`` back without any float. Volumes are kept
in units of 1e-8 base (exact for every volume a CSV of this format carries).

Accepted inputs: ``date,open,high,low,close,volume`` CSVs (ISO dates, with or without an
offset: without one is UTC) named ``<BASE>_<QUOTE>-<n><m|h|d>.csv``, one file or a
directory of them; and gzipped JSON trade rows ``[ms, id, type, side, price, amount,
cost]`` (``<BASE>_<QUOTE>-trades.json.gz``), aggregated into one-minute candles (a minute
without trades is a gap, as in the CSVs). Any row that cannot be read is a ``DataError``
naming the file and the line.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import numpy.typing as npt

from trader.core.errors import ConfigError
from trader.core.market import MarketInfo
from trader.exchange.replay import replay_market

I64 = npt.NDArray[np.int64]
VOLUME_UNIT = Decimal("1e-8")
"""Volumes are int64 multiples of this."""

_CSV = re.compile(r"^([A-Z0-9]+)_([A-Z0-9]+)-(\d+)([mhd])\.csv$")
_TRADES = re.compile(r"^([A-Z0-9]+)_([A-Z0-9]+)-trades\.json\.gz$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
_COLUMNS = ["date", "open", "high", "low", "close", "volume"]
TRADE_CANDLE_MS = 60_000
_Row = tuple[int, list[Decimal], int]
"""A candle read: (time ms, [open, high, low, close, volume], its line in the file)."""


class DataError(ConfigError):
    """A data file that cannot be read: the message names the file and the line."""


@dataclass(frozen=True)
class Series:
    """One symbol's candles: times in epoch ms, prices in ticks of ``market.price_tick``."""

    symbol: str
    market: MarketInfo
    step_ms: int
    ts: I64
    open: I64
    high: I64
    low: I64
    close: I64
    volume: I64
    """Base volume in units of ``VOLUME_UNIT``."""

    def __len__(self) -> int:
        return len(self.ts)

    def price(self, ticks: int) -> Decimal:
        return ticks * self.market.price_tick


def _utc_ms(text: str) -> int:
    when = datetime.fromisoformat(text)
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


def _series(symbol: str, step_ms: int, rows: list[_Row], where: str) -> Series:
    """Sorted, de-duplicated candles -> a ``Series`` (prices on the market's tick)."""
    if not rows:
        raise DataError(f"{where}: no candles")
    rows.sort(key=lambda r: r[0])  # stable: rows at one time stay in file order
    for (t0, _, line0), (t1, _, line1) in zip(rows, rows[1:], strict=False):
        if t1 == t0:
            when = datetime.fromtimestamp(t0 / 1000, UTC).isoformat()
            raise DataError(f"{where}:{line1}: two candles at {when} (line {line0} too)")
    market = replay_market(symbol, rows[0][1][3])
    tick = market.price_tick

    def ticks(v: Decimal) -> int:
        return int(v.quantize(tick, ROUND_HALF_EVEN) / tick)

    cols = [[ticks(v[k]) for _, v, _ in rows] for k in range(4)]
    vol = [int((v[4] / VOLUME_UNIT).to_integral_value(ROUND_HALF_EVEN)) for _, v, _ in rows]
    arr = [np.asarray(c, dtype=np.int64) for c in cols]
    return Series(
        symbol=symbol,
        market=market,
        step_ms=step_ms,
        ts=np.asarray([t for t, _, _ in rows], dtype=np.int64),
        open=arr[0],
        high=arr[1],
        low=arr[2],
        close=arr[3],
        volume=np.asarray(vol, dtype=np.int64),
    )


def load_csv(path: Path, *, symbol: str | None = None, step_ms: int | None = None) -> Series:
    """One OHLCV CSV; symbol and candle length from the file name unless given."""
    m = _CSV.match(path.name)
    if m is None and (symbol is None or step_ms is None):
        raise DataError(f"{path}: name is not <BASE>_<QUOTE>-<n><m|h|d>.csv")
    if m is not None:
        symbol = symbol or f"{m[1]}/{m[2]}"
        step_ms = step_ms or int(m[3]) * _UNIT_MS[m[4]]
    assert symbol is not None and step_ms is not None
    rows: list[_Row] = []
    try:
        with path.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header != _COLUMNS:
                raise DataError(f"{path}:1: header {header} is not {','.join(_COLUMNS)}")
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if len(row) != 6:
                    raise DataError(f"{path}:{line}: {len(row)} fields, expected 6")
                try:
                    values = [Decimal(x) for x in row[1:]]
                    when = _utc_ms(row[0])
                except (InvalidOperation, ValueError) as exc:
                    raise DataError(f"{path}:{line}: cannot read {row}: {exc}") from None
                o, h, lo, c, v = values
                if not all(x.is_finite() for x in values) or min(o, h, lo, c) <= 0 or v < 0:
                    raise DataError(f"{path}:{line}: prices must be > 0, volume >= 0: {row}")
                if not (lo <= min(o, c) and h >= max(o, c)):
                    raise DataError(f"{path}:{line}: low/high do not bound open/close: {row}")
                rows.append((when, values, line))
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text file: {exc}") from None
    return _series(symbol, step_ms, rows, str(path))


def load_trades(path: Path, *, symbol: str | None = None) -> Series:
    """Gzipped JSON trade rows aggregated into one-minute candles (open = first trade,
    close = last, volume = sum of amounts); a minute without trades is a gap."""
    m = _TRADES.match(path.name)
    if m is None and symbol is None:
        raise DataError(f"{path}: name is not <BASE>_<QUOTE>-trades.json.gz")
    symbol = symbol or f"{m[1]}/{m[2]}" if m else symbol
    assert symbol is not None
    try:
        with gzip.open(path, "rt") as f:
            data = json.load(f)
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not gzipped JSON trade rows: {exc}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of trade rows")
    minutes: dict[int, tuple[list[Decimal], int]] = {}  # candle, its first row
    last_ms = -1
    for n, row in enumerate(data, start=1):
        try:
            ms, price, amount = int(row[0]), Decimal(str(row[4])), Decimal(str(row[5]))
        except (TypeError, IndexError, ValueError, InvalidOperation) as exc:
            raise DataError(f"{path}: row {n}: cannot read {row!r}: {exc}") from None
        if price <= 0 or amount < 0 or ms < last_ms:
            raise DataError(f"{path}: row {n}: bad price/amount or time going back: {row!r}")
        last_ms = ms
        t = ms - ms % TRADE_CANDLE_MS
        if t not in minutes:
            minutes[t] = ([price, price, price, price, amount], n)
        else:
            c = minutes[t][0]
            c[1], c[2], c[3], c[4] = max(c[1], price), min(c[2], price), price, c[4] + amount
    candles = [(t, c, n) for t, (c, n) in minutes.items()]
    return _series(symbol, TRADE_CANDLE_MS, candles, str(path))


def load_path(path: Path, *, symbols: list[str] | None = None) -> dict[str, Series]:
    """A file, or every data file in a directory (the finest timeframe per symbol), by
    symbol in name order; ``symbols`` picks some (a missing one is an error)."""
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    found: dict[str, Series] = {}
    for f in files:
        m = _CSV.match(f.name) or _TRADES.match(f.name)
        if m is None:
            if not path.is_dir():
                raise DataError(f"{f}: not an OHLCV CSV or a trades .json.gz by its name")
            continue
        symbol = f"{m[1]}/{m[2]}"
        if symbols and symbol not in symbols:
            continue
        s = load_trades(f) if f.name.endswith(".json.gz") else load_csv(f)
        if symbol not in found or s.step_ms < found[symbol].step_ms:
            found[symbol] = s
    if symbols:
        missing = sorted(set(symbols) - set(found))
        if missing:
            raise DataError(f"{path}: no data for {', '.join(missing)}")
    if not found:
        raise DataError(f"{path}: no <BASE>_<QUOTE>-<n><m|h|d>.csv or -trades.json.gz files")
    return dict(sorted(found.items()))
