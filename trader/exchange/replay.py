"""A price feed replaying real OHLCV candles (CSV) on an accelerated clock.

Replay time = ``start`` + (now - ``origin_ms``) x ``speed``, where ``origin_ms`` is when the
server started and ``start`` the first candle (or a chosen instant, e.g. the 16 Jan 2018
crash). Inside a candle the mid moves linearly open -> low -> high -> close, or open -> high
-> low -> close when the candle closes below its open, so a replayed trigger sees the
candle's whole range. A gap (no candles: no trades) holds the last
close until the next open; before the data the first open holds, and after the end the last
close holds for ever (no looping: a wrap would be a price jump nobody traded).

Prices are parsed from the CSV text as ``Decimal`` and rounded to the market's tick, never
through float; candles served to clients are on the *server's* real-time axis, each real
minute summarising ``speed`` minutes of data, so a trader's backfill and averages work.
"""

from __future__ import annotations

import bisect
import csv
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

from trader.core.errors import BadSymbol
from trader.core.market import Candle, MarketInfo
from trader.exchange.feed import MarketTable
from trader.exchange.generated import market_for

_FILE = re.compile(r"^([A-Z0-9]+)_([A-Z0-9]+)-(\d+)([mhd])\.csv$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DAY_MS = 86_400_000


def replay_market(symbol: str, price: Decimal) -> MarketInfo:
    """Binance-like precision: tick 1e-8 for prices below 1 (BTC/ETH quotes), else by size."""
    m = market_for(symbol, price)
    tick = Decimal("1e-8") if price < 1 else m.price_tick
    return m.model_copy(update={"price_tick": tick})


@dataclass(frozen=True)
class _Series:
    times: list[int]
    """Replay-time vertices of the piecewise-linear mid path (strictly increasing)."""
    prices: list[Decimal]
    starts: list[int]
    """Candle open times, and prefix sums of base volume and quote volume per candle."""
    volume_sums: list[Decimal]
    quote_sums: list[Decimal]


def _utc_ms(text: str) -> int:
    """An ISO date's epoch ms; one without an offset is UTC (never the local zone)."""
    when = datetime.fromisoformat(text)
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


def _load(path: Path, step_ms: int, symbol: str) -> tuple[MarketInfo, _Series]:
    with path.open(newline="") as f:
        rows = {_utc_ms(r["date"]): r for r in csv.DictReader(f)}
    if not rows:
        raise ValueError(f"{path}: no candles")
    first = rows[min(rows)]
    market = replay_market(symbol, Decimal(first["close"]))

    def px(text: str) -> Decimal:
        return Decimal(text).quantize(market.price_tick, ROUND_HALF_EVEN)

    times: list[int] = []
    prices: list[Decimal] = []
    starts, vols, quotes = [], [Decimal(0)], [Decimal(0)]
    third = step_ms // 3
    for t in sorted(rows):
        r = rows[t]
        o, h, lo, c = px(r["open"]), px(r["high"]), px(r["low"]), px(r["close"])
        if times and t - 1 > times[-1]:  # a gap: hold the last close until this open
            times.append(t - 1)
            prices.append(prices[-1])
        first_x, second_x = (h, lo) if c < o else (lo, h)
        for dt, p in ((0, o), (third, first_x), (2 * third, second_x), (step_ms - 1, c)):
            times.append(t + dt)
            prices.append(p)
        volume = Decimal(r["volume"])
        starts.append(t)
        vols.append(vols[-1] + volume)
        quotes.append(quotes[-1] + volume * c)
    return market, _Series(times, prices, starts, vols, quotes)


class ReplayFeed(MarketTable):
    """A ``PriceFeed`` over CSV candles; see the module docstring for the time axis."""

    _source = "the replay"

    def __init__(
        self,
        files: dict[str, tuple[Path, int]],
        *,
        speed: Decimal | int = 60,
        start_ms: int | None = None,
        origin_ms: int,
    ) -> None:
        """``files``: unified symbol -> (CSV path, candle length in ms)."""
        self._markets: dict[str, MarketInfo] = {}
        self._series: dict[str, _Series] = {}
        for symbol, (path, step_ms) in files.items():
            self._markets[symbol], self._series[symbol] = _load(path, step_ms, symbol)
        self.speed = Decimal(speed)
        self.origin_ms = origin_ms
        self.start_ms = (
            start_ms if start_ms is not None else min(s.times[0] for s in self._series.values())
        )

    @classmethod
    def from_dir(
        cls,
        directory: Path,
        *,
        symbols: list[str] | None = None,
        speed: Decimal | int = 60,
        start: datetime | None = None,
        origin_ms: int,
    ) -> ReplayFeed:
        """Every ``<BASE>_<QUOTE>-<n><m|h|d>.csv`` in ``directory`` (the finest timeframe per
        pair), or only ``symbols``."""
        found: dict[str, tuple[Path, int]] = {}
        for path in sorted(directory.glob("*.csv")):
            m = _FILE.match(path.name)
            if not m:
                continue
            symbol, step = f"{m[1]}/{m[2]}", int(m[3]) * _UNIT_MS[m[4]]
            if symbol not in found or step < found[symbol][1]:
                found[symbol] = (path, step)
        if symbols:
            missing = sorted(set(symbols) - set(found))
            if missing:
                raise BadSymbol(f"no CSV for {', '.join(missing)} in {directory}")
            found = {s: found[s] for s in symbols}
        if not found:
            raise ValueError(f"no <BASE>_<QUOTE>-<timeframe>.csv files in {directory}")
        start_ms = _utc_ms(start.isoformat()) if start else None
        return cls(found, speed=speed, start_ms=start_ms, origin_ms=origin_ms)

    def replay_ms(self, ts_ms: int) -> int:
        """The data instant shown at server time ``ts_ms``."""
        return self.start_ms + int((ts_ms - self.origin_ms) * self.speed)

    def _at(self, symbol: str, r: int) -> Decimal:
        s, tick = self._series[symbol], self.market(symbol).price_tick
        i = bisect.bisect_right(s.times, r)
        if i == 0:
            return s.prices[0]
        if i == len(s.times):
            return s.prices[-1]
        t0, t1, p0, p1 = s.times[i - 1], s.times[i], s.prices[i - 1], s.prices[i]
        return (p0 + (p1 - p0) * (r - t0) / (t1 - t0)).quantize(tick, ROUND_HALF_EVEN)

    def mid(self, symbol: str, ts_ms: int) -> Decimal:
        self.market(symbol)
        return self._at(symbol, self.replay_ms(ts_ms))

    def quote_volume(self, symbol: str, ts_ms: int) -> Decimal:
        """Quote volume traded in the 24 data hours before the replay instant."""
        self.market(symbol)
        s, r = self._series[symbol], self.replay_ms(ts_ms)
        hi = bisect.bisect_right(s.starts, r)
        lo = bisect.bisect_right(s.starts, r - _DAY_MS)
        return (s.quote_sums[hi] - s.quote_sums[lo]).quantize(Decimal("1e-8"))

    def candles(self, symbol: str, *, since_ms: int, until_ms: int, limit: int) -> list[Candle]:
        self.market(symbol)
        s = self._series[symbol]
        first = since_ms - since_ms % 60_000
        minutes = range(first, until_ms + 1, 60_000)[-limit:] if limit > 0 else range(0)
        out = []
        for m in minutes:
            end = min(m + 59_999, until_ms)
            a, b = self.replay_ms(m), self.replay_ms(end)
            # The minute is the data in [a, a_next): what lies between its last millisecond
            # and the next minute's first (``speed`` data ms) is its, not lost.
            a_next = self.replay_ms(m + 60_000) if end == m + 59_999 else b + 1
            o, c = self._at(symbol, a), self._at(symbol, b)
            inside = s.prices[bisect.bisect_right(s.times, a) : bisect.bisect_left(s.times, a_next)]
            lo_i = bisect.bisect_left(s.starts, a)
            hi_i = bisect.bisect_left(s.starts, a_next)
            out.append(
                Candle(
                    ts_ms=m,
                    open=o,
                    close=c,
                    high=max([o, c, *inside]),
                    low=min([o, c, *inside]),
                    volume=s.volume_sums[hi_i] - s.volume_sums[lo_i],
                )
            )
        return out
