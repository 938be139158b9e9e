"""Loading OHLCV CSVs and trade files: exact ticks, symbols from names, gaps and flat
candles kept, and every malformed input refused with its file and line."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from trader.backtest.data import DataError, load_csv, load_path, load_trades

OHLCV = SHARED_DATA / "ohlcv"
needs_data = pytest.mark.skipif(not OHLCV.is_dir(), reason="shared data not present")
HEADER = "date,open,high,low,close,volume\n"


def _csv(tmp_path: Path, body: str, name: str = "ABC_BTC-5m.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body)
    return path


def test_prices_are_exact_ticks_of_the_text(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "2018-01-10 04:55:00+00:00,5.330000000000001e-05,5.4e-05,5.288000000000001e-05,"
        "5.2900000000000005e-05,431401.97869504\n"
        "2018-01-10 05:00:00,5.29e-05,5.29e-05,5.29e-05,5.29e-05,0\n",
    )
    s = load_csv(path)
    assert s.symbol == "ABC/BTC" and s.step_ms == 300_000
    assert s.market.price_tick == Decimal("1e-8")
    assert s.open.tolist() == [5330, 5290] and s.low.tolist() == [5288, 5290]
    assert s.price(int(s.close[0])) == Decimal("0.00005290")
    assert s.volume.tolist() == [43140197869504, 0]
    assert s.ts.tolist() == [1515560100000, 1515560400000]  # no offset: UTC


@pytest.mark.parametrize(
    ("body", "line", "what"),
    [
        ("2018-01-10 04:55:00+00:00,1,1,1\n", 2, "4 fields"),
        ("2018-01-10 04:55:00+00:00,1,1,1,1,1\nyesterday,1,1,1,1,1\n", 3, "cannot read"),
        ("2018-01-10 04:55:00+00:00,1,abc,1,1,1\n", 2, "cannot read"),
        ("2018-01-10 04:55:00+00:00,1,1,0,1,1\n", 2, "> 0"),
        ("2018-01-10 04:55:00+00:00,1,2,1.5,1,1\n", 2, "low/high"),
        ("2018-01-10 04:55:00+00:00,1,1,1,NaN,1\n", 2, "> 0"),
    ],
)
def test_a_malformed_row_names_file_and_line(
    tmp_path: Path, body: str, line: int, what: str
) -> None:
    path = _csv(tmp_path, body)
    with pytest.raises(DataError, match=f"ABC_BTC-5m.csv:{line}: .*{what}"):
        load_csv(path)


def test_bad_header_empty_file_duplicate_and_binary_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "ABC_BTC-5m.csv"
    bad.write_text("time,o,h,l,c,v\n")
    with pytest.raises(DataError, match=r"ABC_BTC-5m.csv:1: header"):
        load_csv(bad)
    with pytest.raises(DataError, match="no candles"):
        load_csv(_csv(tmp_path, ""))
    row = "2018-01-10 04:55:00+00:00,1,1,1,1,1\n"
    other = "2018-01-10 05:00:00+00:00,1,1,1,1,1\n"
    # The later duplicate's line, and the first one's (the rows are sorted by time).
    with pytest.raises(DataError, match=r"ABC_BTC-5m.csv:4: two candles at .*04:55.*line 2"):
        load_csv(_csv(tmp_path, row + other + row))
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="ABC_BTC-5m.csv"):
        load_csv(bad)
    with pytest.raises(DataError, match="no such file"):
        load_path(tmp_path / "missing")


def test_trades_aggregate_into_minute_candles_and_bad_rows_are_named(tmp_path: Path) -> None:
    rows = [
        [60_000, "1", None, "buy", 0.5, 2.0, 1.0],
        [60_500, "2", None, "sell", 0.7, 1.0, 0.7],
        [119_999, "3", None, "buy", 0.4, 0.5, 0.2],
        [240_000, "4", None, "buy", 0.6, 1.0, 0.6],  # two empty minutes between: a gap
    ]
    path = tmp_path / "ABC_ETH-trades.json.gz"
    path.write_bytes(gzip.compress(json.dumps(rows).encode()))
    s = load_trades(path)
    assert s.symbol == "ABC/ETH" and s.ts.tolist() == [60_000, 240_000]
    tick = s.market.price_tick
    assert [s.price(int(x)) for x in s.open] == [Decimal("0.5") / tick * tick, Decimal("0.6")]
    assert s.high.tolist()[0] * tick == Decimal("0.7") and s.low[0] * tick == Decimal("0.4")
    assert s.volume[0] * Decimal("1e-8") == Decimal("3.5")
    path.write_bytes(gzip.compress(json.dumps([*rows, [1, "x"]]).encode()))
    with pytest.raises(DataError, match="row 5"):
        load_trades(path)
    path.write_bytes(b"not gzip")
    with pytest.raises(DataError, match="ABC_ETH-trades.json.gz: not gzipped JSON"):
        load_trades(path)


@needs_data
def test_the_real_directory_loads_every_pair_with_its_gaps_and_flat_candles() -> None:
    data = load_path(OHLCV)
    assert len(data) == 11 and "ADA/BTC" in data and "XRP/ETH" in data
    ada = data["ADA/BTC"]
    assert len(ada) == 5720 and ada.step_ms == 300_000
    assert ((ada.ts[1:] - ada.ts[:-1]) > ada.step_ms).sum() > 0  # gaps kept as gaps
    assert sum(int((s.high == s.low).sum()) for s in data.values()) > 100  # flat candles
    picked = load_path(OHLCV, symbols=["ETH/BTC"])
    assert list(picked) == ["ETH/BTC"]
    with pytest.raises(DataError, match="no data for NOPE/BTC"):
        load_path(OHLCV, symbols=["NOPE/BTC"])
    trades = load_path(SHARED_DATA / "trades")
    assert list(trades) == ["XRP/ETH"] and trades["XRP/ETH"].step_ms == 60_000
