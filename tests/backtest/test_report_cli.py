"""The report's files (trades CSV/JSON, a valid PNG of the expected size) and the
``starter.py backtest`` command as a real process on two real pairs."""

from __future__ import annotations

import csv
import json
import os
import struct
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from trader.backtest.data import load_path
from trader.backtest.fast import run_fast
from trader.backtest.generate import random_walk
from trader.backtest.report import CHART_SIZE, build_report, write_chart, write_files
from trader.backtest.sim import Outcome, SimConfig
from trader.core.params import TraderParams

ROOT = Path(__file__).resolve().parents[2]
OHLCV = SHARED_DATA / "ohlcv"
PAIRS = ["ETH/BTC", "TRX/BTC"]


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:33]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    length, kind = struct.unpack(">I4s", head[8:16])
    assert (length, kind) == (13, b"IHDR"), "the first chunk must be IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_files_hold_every_trade_exactly_and_the_chart_is_a_png(tmp_path: Path) -> None:
    data = {s: random_walk(s, 3000, seed=n) for n, s in enumerate(["A/BTC", "B/BTC"])}
    params = TraderParams(quote_budgets={"BTC": Decimal("0.002")}, drop_trigger_pct=Decimal(1))
    trades = run_fast(data, SimConfig(params))
    report = build_report(data, trades)
    assert len(report.trades) > 5
    csv_path, json_path = write_files(report, tmp_path)
    rows = list(csv.DictReader(csv_path.open()))
    assert [Decimal(r["net"]) for r in rows] == [t.net for t in report.trades]
    doc = json.loads(json_path.read_text())
    assert doc["trades"] == rows
    assert [Decimal(f["realized_pnl"]) for f in doc["symbols"]] == [
        sum((t.net for t in trades.trades[s]), Decimal(0)) for s in sorted(data)
    ]
    chart = write_chart(report, tmp_path / "equity.png")
    assert _png_size(chart) == CHART_SIZE
    nothing = build_report(data, Outcome({}, {}))
    empty = write_chart(nothing, tmp_path / "empty.png")  # no trade: still a PNG
    assert _png_size(empty) == CHART_SIZE


@pytest.mark.skipif(not OHLCV.is_dir(), reason="shared data not present")
def test_the_backtest_command_on_two_real_pairs(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        'drop_trigger_pct = "3"\ndata_dir = "' + str(tmp_path / "d") + '"\n'
        '[quote_budgets]\nBTC = "0.002"\n'
    )
    out = tmp_path / "out"
    cmd = [sys.executable, "starter.py", "backtest", "--data", str(OHLCV)]
    cmd += ["--symbols", *PAIRS, "--config", str(config), "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL")}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ETH/BTC" in done.stdout and "total BTC" in done.stdout
    doc = json.loads((out / "trades.json").read_text())
    # The same trades as the library call with the same parameters.
    data = load_path(OHLCV, symbols=PAIRS)
    params = TraderParams(quote_budgets={"BTC": Decimal("0.002")}, drop_trigger_pct=Decimal(3))
    expected = run_fast(data, SimConfig(params, fee_rate=Decimal("0.001")))
    assert len(doc["trades"]) == sum(len(t) for t in expected.trades.values()) > 50
    assert {r["symbol"] for r in doc["trades"]} == set(PAIRS)
    assert _png_size(out / "equity.png") == CHART_SIZE
    assert len(list(csv.DictReader((out / "trades.csv").open()))) == len(doc["trades"])
    assert not (tmp_path / "d" / "temporal").exists(), "a backtest starts no Temporal server"


def test_a_malformed_file_fails_the_command_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "ABC_BTC-5m.csv"
    bad.write_text("date,open,high,low,close,volume\n2024-01-01 00:00:00,1,1,1,1,1\nx,1\n")
    cmd = [sys.executable, "starter.py", "backtest", "--data", str(bad), "--out", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"{bad}:3: 2 fields" in done.stderr
