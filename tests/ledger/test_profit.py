"""``starter.py profit`` on a known set of trades, figures computed by hand."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from tests.ledger.test_store import trade
from trader.contracts import InventoryRecord, TradeRecord
from trader.ledger import LedgerStore
from trader.ledger.profit import parse_since, run

ROOT = Path(__file__).parents[2]
# (symbol, net, closed_ts): USDT's cumulative PnL by close time is 10, 2, -2, 1, 7, so its
# deepest fall from a peak is 10 -> -2 = 12; A alone 10, 6, 12 (4); B alone -8, -5 (8).
KNOWN = [
    ("A/USDT", "10", 100.0),
    ("B/USDT", "-8", 200.0),
    ("ETH/BTC", "0.00001234", 250.0),
    ("A/USDT", "-4", 300.0),
    ("B/USDT", "3", 400.0),
    ("A/USDT", "6", 500.0),
]


def _known(i: int, symbol: str, net: str, ts: float) -> TradeRecord:
    fee = D("0.00000001") if symbol.endswith("BTC") else D("0.1")
    return trade(f"{symbol}:{i}", net, closed_ts=ts).model_copy(
        update={"symbol": symbol, "entry_fee": fee, "exit_fee": 2 * fee, "simulated": False}
    )


def _write_off(symbol: str, cost: str, ts: float, *, simulated: bool = False) -> InventoryRecord:
    return InventoryRecord(
        record_id=f"w-{symbol}-{ts:g}",
        symbol=symbol,
        exchange="paper",
        kind="inventory_write_off",
        amount=D("1"),
        cost=D(cost),
        price=D(cost),
        reason="gone",
        decision_id=None,
        ts=ts,
        simulated=simulated,
    )


async def _profit(
    target: str | Path, capsys: pytest.CaptureFixture[str], **kw: object
) -> dict[str, Any]:
    args = argparse.Namespace(**{"since": None, "symbol": None, "json": True, **kw})
    assert await run(args, target) == 0
    return dict(json.loads(capsys.readouterr().out))


async def test_profit_of_a_known_set_of_trades(
    store: LedgerStore, ledger_target: str | Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i, (symbol, net, ts) in enumerate(KNOWN):
        assert await store.record_trade(_known(i, symbol, net, ts))
    await store.record_inventory(_write_off("B/USDT", "0.5", 450.0))
    out = await _profit(ledger_target, capsys)
    rows = {r["name"]: r for r in out["symbols"] + out["totals"]}
    usdt = rows["total USDT"]
    assert (usdt["trades"], usdt["wins"], D(usdt["win_rate"])) == (5, 3, D("0.6"))
    assert D(usdt["realized_pnl"]) == 7 and D(usdt["fees"]) == D("1.5")
    assert (D(usdt["best_trade"]), D(usdt["worst_trade"])) == (D(10), D(-8))
    assert D(usdt["max_drawdown"]) == 12
    assert D(rows["A/USDT"]["max_drawdown"]) == 4 and D(rows["A/USDT"]["realized_pnl"]) == 12
    assert D(rows["B/USDT"]["max_drawdown"]) == 8 and D(rows["B/USDT"]["win_rate"]) == D("0.5")
    btc = rows["total BTC"]  # never summed with USDT
    assert D(btc["realized_pnl"]) == D("0.00001234") and D(btc["fees"]) == D("0.00000003")
    assert out["inventory_written_off"] == {"USDT": "0.5"}

    late = await _profit(ledger_target, capsys, since=datetime.fromtimestamp(350, UTC).isoformat())
    assert [r["name"] for r in late["symbols"]] == ["A/USDT", "B/USDT"]
    assert late["totals"][0]["realized_pnl"] == "9"
    only_b = await _profit(ledger_target, capsys, symbol="B/USDT")
    assert [(r["name"], r["trades"]) for r in only_b["totals"]] == [("total USDT", 2)]


async def test_profit_counts_real_rows_unless_asked_for_the_simulated_ones(
    store: LedgerStore, ledger_target: str | Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A both-mode ledger: the primary's real trades and the shadow's simulated ones (and a
    simulated write-off). The default sums the real rows only and says so; ``--simulated``
    the simulated ones; ``--engine`` one engine; real and simulated are never added."""
    rows = [
        ("A/USDT:1", "10", False, "legacy"),
        ("A/USDT:2", "-4", False, "legacy"),
        ("A/USDT:lg1", "100", True, "fsm"),
        ("A/USDT:lg2", "7", True, "legacy"),
    ]
    for i, (tid, net, simulated, engine) in enumerate(rows):
        t = _known(i, "A/USDT", net, 100.0 + i).model_copy(
            update={"trade_id": tid, "simulated": simulated, "engine": engine}
        )
        assert await store.record_trade(t)
    await store.record_inventory(_write_off("A/USDT", "3", 200.0, simulated=True))
    assert await store.total_pnl() == 6
    assert await store.total_pnl(simulated=True) == 104

    def total(out: dict[str, Any]) -> tuple[int, D]:
        [usdt] = out["totals"]
        return usdt["trades"], D(usdt["realized_pnl"])

    real = await _profit(ledger_target, capsys)
    assert total(real) == (2, D(6)) and real["inventory_written_off"] == {}
    assert (
        real["counted"].startswith("counted: real trades only") and "2 simulated" in real["counted"]
    )
    sim = await _profit(ledger_target, capsys, simulated=True)
    assert total(sim) == (2, D(107)) and sim["inventory_written_off"] == {"USDT": "3"}
    assert sim["counted"].startswith("counted: simulated trades only")
    shadow = await _profit(ledger_target, capsys, simulated=True, engine="fsm")
    # The write-off is the FSM's (the record's default engine): counted with its trades.
    assert total(shadow) == (1, D(100)) and shadow["inventory_written_off"] == {"USDT": "3"}
    lg = await _profit(ledger_target, capsys, simulated=True, engine="legacy")
    assert total(lg) == (1, D(7)) and lg["inventory_written_off"] == {}
    args = argparse.Namespace(since=None, symbol=None, json=False, simulated=False, engine=None)
    assert await run(args, ledger_target) == 0
    table = capsys.readouterr().out
    assert "counted: real trades only" in table.splitlines()[-1]


def test_since_takes_an_age_or_an_iso_date() -> None:
    now = datetime(2026, 12, 8, 12, tzinfo=UTC)
    assert parse_since("7d", now=now) == datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp()
    assert parse_since("90m", now=now) == datetime(2026, 12, 8, 10, 30, tzinfo=UTC).timestamp()
    assert parse_since("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    with pytest.raises(ValueError):
        parse_since("last week")


async def test_the_command_prints_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    store = LedgerStore(path)
    await store.record_trade(_known(0, "A/USDT", "2.5", 100.0))
    await store.close()
    env = {**os.environ, "LEDGER_URL": str(path), "DATA_DIR": str(tmp_path)}
    cmd = [sys.executable, "starter.py", "profit"]
    table = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert "total USDT" in table.stdout and "2.5" in table.stdout
    as_json = subprocess.run(
        [*cmd, "--json"], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(as_json.stdout)["totals"][0]["realized_pnl"] == "2.5"


def test_the_command_on_a_missing_ledger_says_so_and_creates_none(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "ledger.sqlite"
    env = {**os.environ, "LEDGER_URL": str(missing), "DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "starter.py", "profit"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode != 0 and f"no ledger at {missing}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not missing.exists()
