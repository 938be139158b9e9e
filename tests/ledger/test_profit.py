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
from trader.ledger.profit import Counted, account, parse_since, run

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
        update={
            "symbol": symbol,
            "exchange": "binance",
            "entry_fee": fee,
            "exit_fee": 2 * fee,
            "simulated": False,
        }
    )


def _write_off(symbol: str, cost: str, ts: float, *, simulated: bool = False) -> InventoryRecord:
    return InventoryRecord(
        record_id=f"w-{symbol}-{ts:g}",
        symbol=symbol,
        exchange="binance",
        kind="inventory_write_off",
        amount=D("1"),
        cost=D(cost),
        price=D(cost),
        reason="gone",
        decision_id=None,
        ts=ts,
        simulated=simulated,
    )


REAL = account(exchange="binance", global_trading=True, both_primary=None)
"""The default on a real exchange: the real rows."""


async def _profit(
    target: str | Path,
    capsys: pytest.CaptureFixture[str],
    default: Counted = REAL,
    **kw: object,
) -> dict[str, Any]:
    args = argparse.Namespace(**{"since": None, "symbol": None, "json": True, **kw})
    assert await run(args, target, default) == 0
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


async def test_profit_counts_the_primary_account_unless_asked_for_others(
    store: LedgerStore, ledger_target: str | Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A both-mode ledger: the primary's real trades and the shadow's simulated ones (and a
    simulated write-off). On a real exchange the default sums the real rows only and says
    so; on the paper exchange the primary engine's simulated ones; ``--simulated`` /
    ``--no-simulated`` and ``--engine`` override; real and simulated are never added."""
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
    args = argparse.Namespace(since=None, symbol=None, json=False, simulated=None, engine=None)
    assert await run(args, ledger_target, REAL) == 0
    table = capsys.readouterr().out
    last = table.splitlines()[-1]
    assert "counted: real trades only, exchange binance (the account on binance)" in last

    # Dry-run, both mode, legacy primary: its own simulated trades, not the shadow's.
    paper = account(exchange="binance", global_trading=False, both_primary="legacy")
    own = await _profit(ledger_target, capsys, paper)
    assert total(own) == (1, D(7))
    assert own["counted"].startswith(
        "counted: simulated trades only, engine legacy, exchange binance "
        "(the primary legacy engine's account on binance in dry-run)"
    ), own["counted"]
    assert total(await _profit(ledger_target, capsys, paper, engine="all")) == (2, D(107))
    real_too = await _profit(ledger_target, capsys, paper, simulated=False)
    assert total(real_too) == (2, D(6)) and "as asked" in real_too["counted"]  # legacy's real
    on_paper = account(exchange="paper", global_trading=True, both_primary=None)
    assert on_paper.simulated and on_paper.exchange == "paper"


def test_since_takes_an_age_or_an_iso_date() -> None:
    now = datetime(2026, 12, 8, 12, tzinfo=UTC)
    assert parse_since("7d", now=now) == datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp()
    assert parse_since("90m", now=now) == datetime(2026, 12, 8, 10, 30, tzinfo=UTC).timestamp()
    assert parse_since("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    with pytest.raises(ValueError):
        parse_since("last week")


async def test_the_command_prints_the_primary_accounts_ledger(tmp_path: Path) -> None:
    """A plain ``profit`` counts the configured exchange's account: on the paper exchange
    (the demo) its simulated trades, not another exchange's (a dry-run's), and says which;
    ``--exchange all`` every exchange's."""
    path = tmp_path / "ledger.sqlite"
    store = LedgerStore(path)
    await store.record_trade(_known(0, "A/USDT", "2.5", 100.0))  # real, on binance
    simulated = {"simulated": True, "exchange": "paper"}
    await store.record_trade(_known(1, "A/USDT", "1.25", 200.0).model_copy(update=simulated))
    dry_run = {"simulated": True, "exchange": "kraken"}  # another account: not paper's
    await store.record_trade(_known(2, "A/USDT", "0.5", 300.0).model_copy(update=dry_run))
    await store.close()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("FSM_MODE", "FSM_ENABLED")},
        "LEDGER_URL": str(path),
        "DATA_DIR": str(tmp_path),
        "EXCHANGE": "paper",
        "GLOBAL_TRADING": "true",
    }
    cmd = [sys.executable, "starter.py", "profit"]
    table = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=120
    )
    [total] = [line for line in table.stdout.splitlines() if line.startswith("total USDT")]
    assert total.split()[2:5] == ["1", "100.0", "1.25"], table.stdout  # trades, win %, realized
    assert table.stdout.splitlines()[-1] == (
        "counted: simulated trades only, exchange paper (the account on the paper exchange); "
        "2 real, other-engine or other-exchange row(s) left out (--no-simulated, --engine, "
        "--exchange)"
    ), table.stdout
    live = {**env, "EXCHANGE": "binance"}  # every exchange's simulated rows, as asked
    asked = ["--json", "--simulated", "--exchange", "all"]
    as_json = subprocess.run(
        [*cmd, *asked], cwd=ROOT, env=live, capture_output=True, text=True, check=True, timeout=120
    )
    out = json.loads(as_json.stdout)
    assert out["totals"][0]["realized_pnl"] == "1.75", out
    assert out["counted"] == (
        "counted: simulated trades only, every exchange (as asked); 1 real, other-engine or "
        "other-exchange row(s) left out (--no-simulated, --engine, --exchange)"
    ), out


def test_the_command_on_a_missing_ledger_says_so_and_creates_none(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "ledger.sqlite"
    env = {**os.environ, "LEDGER_URL": str(missing), "DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "starter.py", "profit"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and f"no ledger at {missing}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not missing.exists()
