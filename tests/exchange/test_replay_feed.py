"""ReplayFeed: the mid path inside candles, gaps, holding at the ends, candles on the
server's real-time axis, and the real 2018 CSVs (BTC-quoted, 5e-05 prices)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from trader.core.errors import BadSymbol
from trader.exchange.replay import ReplayFeed

T0 = int(datetime(2018, 1, 10, tzinfo=UTC).timestamp() * 1000)
# An up candle, a down candle, a 10-minute gap, then a flat candle; floats as the real files
# write them (5.330000000000001e-05 style) so parsing must round to the tick, not trust them.
CSV = """date,open,high,low,close,volume
2018-01-10 00:00:00+00:00,1e-04,1.1e-04,9.000000000000001e-05,1.05e-04,10
2018-01-10 00:05:00+00:00,1.05e-04,1.06e-04,9.5e-05,9.6e-05,20
2018-01-10 00:20:00+00:00,9.7e-05,9.7e-05,9.7e-05,9.7e-05,0.5
"""


def feed(tmp_path: Path, *, speed: int = 5, start_ms: int | None = None) -> ReplayFeed:
    (tmp_path / "ADA_BTC-5m.csv").write_text(CSV)
    (tmp_path / "notes.csv").write_text("ignored")
    return ReplayFeed.from_dir(
        tmp_path,
        speed=speed,
        origin_ms=0,
        start=None if start_ms is None else datetime.fromtimestamp(start_ms / 1000, UTC),
    )


def test_market_precision_fits_btc_quoted_prices(tmp_path):
    m = feed(tmp_path).market("ADA/BTC")
    assert (m.base, m.quote, m.price_tick, m.amount_step, m.min_cost) == (
        "ADA",
        "BTC",
        D("1e-8"),
        D(1),
        D("0.0001"),
    )


def test_mid_goes_open_low_high_close_in_an_up_candle(tmp_path):
    f = feed(tmp_path)  # speed 5: one real minute is one 5-minute candle
    assert [f.mid("ADA/BTC", t) for t in (0, 10_000, 20_000, 30_000, 40_000)] == [
        D("0.00010000"),
        D("0.00009500"),
        D("0.00009000"),
        D("0.00010000"),
        D("0.00011000"),
    ]
    assert f.replay_ms(60_000) == T0 + 300_000


def test_mid_goes_open_high_low_close_in_a_down_candle(tmp_path):
    f = feed(tmp_path)
    assert [f.mid("ADA/BTC", 60_000 + t) for t in (0, 20_000, 40_000)] == [
        D("0.00010500"),
        D("0.00010600"),
        D("0.00009500"),
    ]


def test_gaps_hold_the_last_close_and_the_ends_hold(tmp_path):
    f = feed(tmp_path)
    assert f.mid("ADA/BTC", 130_000) == D("0.00009600")  # in the gap
    assert f.mid("ADA/BTC", 239_000) == D("0.00009600")
    assert f.mid("ADA/BTC", 240_000) == D("0.00009700")  # the flat candle
    assert f.mid("ADA/BTC", 10**9) == D("0.00009700")  # after the end: held
    assert f.mid("ADA/BTC", -(10**9)) == D("0.00010000")  # before the start: first open


def test_candles_are_on_the_real_time_axis(tmp_path):
    f = feed(tmp_path)
    c = f.candles("ADA/BTC", since_ms=0, until_ms=179_999, limit=10)
    assert [x.ts_ms for x in c] == [0, 60_000, 120_000]
    assert (c[0].open, c[0].high, c[0].low, c[0].close, c[0].volume) == (
        D("0.00010000"),
        D("0.00011000"),
        D("0.00009000"),
        D("0.00010500"),
        D(10),
    )
    assert (c[1].high, c[1].low, c[1].close) == (D("0.00010600"), D("0.00009500"), D("0.00009600"))
    assert (c[2].open, c[2].high, c[2].low, c[2].volume) == (
        D("0.00009600"),
        D("0.00009600"),
        D("0.00009600"),
        D(0),
    )
    assert f.candles("ADA/BTC", since_ms=0, until_ms=179_999, limit=1) == c[-1:]


def test_start_and_quote_volume(tmp_path):
    f = feed(tmp_path, speed=1, start_ms=T0 + 300_000)
    assert f.mid("ADA/BTC", 0) == D("0.00010500")
    assert f.quote_volume("ADA/BTC", 0) == D("10") * D("0.000105") + D(20) * D("0.000096")


def test_unknown_symbols(tmp_path):
    f = feed(tmp_path)
    with pytest.raises(BadSymbol):
        f.mid("ETH/BTC", 0)
    with pytest.raises(BadSymbol):
        ReplayFeed.from_dir(tmp_path, symbols=["ETH/BTC"], origin_ms=0)


@pytest.mark.skipif(not (SHARED_DATA / "ohlcv").is_dir(), reason="shared data not present")
def test_real_2018_csvs_replay_from_the_crash():
    start = datetime(2018, 1, 16, tzinfo=UTC)
    f = ReplayFeed.from_dir(SHARED_DATA / "ohlcv", speed=300, start=start, origin_ms=0)
    assert len(f.symbols) == 11 and "XRP/ETH" in f.symbols
    with (SHARED_DATA / "ohlcv" / "ADA_BTC-5m.csv").open() as fh:
        row = next(line for line in fh if line.startswith("2018-01-16 00:00:00"))
    assert f.mid("ADA/BTC", 0) == D(row.split(",")[1]).quantize(D("1e-8"))
    assert D("0.00001") < f.mid("ADA/BTC", 0) < D("0.0001")
    day = f.candles("ADA/BTC", since_ms=0, until_ms=24 * 60_000 - 1, limit=1000)
    assert len(day) == 24  # 24 real minutes = 5 days at 300x
    assert all(c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high for c in day)
    with (SHARED_DATA / "ohlcv" / "ADA_BTC-5m.csv").open() as fh:
        lows = [D(line.split(",")[3]) for line in fh if "2018-01-16" <= line[:10] < "2018-01-21"]
    # The crash (~17 % down on ADA/BTC) is in the replayed lows, exactly as in the data.
    assert min(c.low for c in day) == min(lows).quantize(D("1e-8")) < D("0.85") * day[0].open


def test_candles_lose_no_trade_between_two_server_minutes(tmp_path):
    # Speed 60: a server minute ends at replay_ms(m + 59_999), 60 data ms before the next
    # one starts. A candle opening, or a high, in those 60 ms still belongs to a minute.
    (tmp_path / "XRP_ETH-1m.csv").write_text(
        "date,open,high,low,close,volume\n"
        "2018-01-10 00:00:00+00:00,1,1,1,1,10\n"
        "2018-01-10 00:01:00+00:00,1,3,1,1,20\n"  # the high is 40 s into the candle
        "2018-01-10 00:02:00+00:00,1,1,1,1,40\n"
    )
    for lost in (T0 + 60_000, T0 + 100_000):  # the second candle's open, its high
        start = datetime.fromtimestamp((lost - 59_999 * 60 - 30) / 1000, UTC)
        f = ReplayFeed.from_dir(tmp_path, speed=60, start=start, origin_ms=0)
        assert f.replay_ms(59_999) < lost < f.replay_ms(60_000)
        c = f.candles("XRP/ETH", since_ms=0, until_ms=179_999, limit=10)
        assert sum(x.volume for x in c) == 70 and max(x.high for x in c) == 3


def test_dates_without_an_offset_are_utc_whatever_the_local_zone(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        (tmp_path / "ADA_BTC-5m.csv").write_text(CSV.replace("+00:00", ""))
        naive = ReplayFeed.from_dir(tmp_path, speed=5, origin_ms=0)
        later = ReplayFeed.from_dir(
            tmp_path, speed=5, origin_ms=0, start=datetime(2018, 1, 10, 0, 5)
        )  # naive too
    finally:
        monkeypatch.undo()
        time.tzset()
    assert (naive.start_ms, later.start_ms) == (T0, T0 + 300_000)
