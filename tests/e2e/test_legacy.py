"""The legacy engine as a process (FSM_MODE=legacy, no Temporal server): it trades the demo,
survives SIGKILL right after sending a buy, while holding a position and right after sending
a sell with exactly one order per decision at the (SQLite-persisted) paper exchange, and
reads ``stuck`` from its state."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.e2e.helpers import kill, run, spawn, wait_until
from trader.config import load_settings
from trader.contracts import TradeRecord
from trader.core.market import Order
from trader.core.phases import Phase
from trader.ledger import read_trades
from trader.legacy.store import read_state, state_path
from trader.runtime.exchange import build_exchange

pytestmark = pytest.mark.e2e

SYMBOL = "SOL/USDT"
LEGACY = {"FSM_MODE": "legacy"}


def _config(tmp: Path) -> Path:
    path = tmp / "cfg.toml"
    path.write_text(f"""
data_dir = "{tmp / "data"}"
watchlist = ["{SYMBOL}"]
fsm_enabled = false
market_poll_interval_s = 0.2
backfill_minutes = 0
drop_trigger_pct = "0.15"
anchor_mode = "peak"
take_profit_pct = "0.15"
stop_loss_pct = "0.3"
trailing_enabled = false
max_position_hold_minutes = "0.5"
cooldown_minutes = "0.05"
buy_order_timeout_seconds = 10
sell_order_timeout_seconds = 5
order_consistency_window_seconds = 3
order_activity_timeout_seconds = 5

[paper]
seed = 11
tick_ms = 250
volatility_bps = "12"
""")
    return path


def _orders(cfg: Path) -> list[Order]:
    async def read() -> list[Order]:
        exchange = build_exchange(load_settings(cfg))
        try:
            return exchange.all_orders()  # type: ignore[attr-defined,no-any-return]
        finally:
            await exchange.close()

    return asyncio.run(read())


class Decided(NamedTuple):
    """An order the engine decided, as its phase events tell."""

    client_order_id: str
    side: str
    decision_id: str
    trigger: str
    """How it left its place phase: ``order_placed``, or ``failed`` (into ERROR, which
    finds a sent order by its client id: a buy resumed past the stale limit)."""


def _decided_in_log(data: Path) -> list[Decided]:
    """Every order the engine decided: its events leaving PLACE_BUY / PLACE_SELL with a
    client id (a rejected order has none: it was never placed)."""
    decided = []
    for file in sorted((data / "logs").glob("*.jsonl")):
        for line in file.read_text().splitlines():
            e = json.loads(line)
            if e["src"] in ("place_buy", "place_sell") and e["client_order_id"]:
                side = "buy" if e["src"] == "place_buy" else "sell"
                decided.append(Decided(e["client_order_id"], side, e["decision_id"], e["trigger"]))
    return decided


def _restart_until_traded(
    cfg: Path, log: Path, procs: list[subprocess.Popen[bytes]], what: str
) -> list[TradeRecord]:
    """A new engine process, run until the ledger has a trade, then stopped (Ctrl-C)."""
    proc = spawn("starter.py", "--config", str(cfg), log=log)
    procs.append(proc)
    ledger = Path(load_settings(cfg).ledger_target)
    trades: list[TradeRecord] = wait_until(
        lambda: ledger.exists() and read_trades(ledger),
        timeout=120,
        what=f"the trade to complete {what}",
    )
    kill(proc, signal.SIGINT)
    assert proc.returncode == 0, log.read_text()[-2000:]
    return trades


def test_legacy_engine_trades_the_demo(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = tmp_path / "engine.log"
    env = {**LEGACY, "DATA_DIR": str(data)}
    proc = spawn("starter.py", "--config", "config/demo.toml", env=env, log=log)
    ledger = data / "ledger.sqlite"
    try:
        trades = wait_until(
            lambda: ledger.exists() and read_trades(ledger),
            timeout=600,
            interval=1.0,
            what=f"a demo trade in the ledger ({log.read_text()[-500:]})",
        )
        status = run("starter.py", "--config", "config/demo.toml", "status", "--once",
                     "--show-idle", env={**env, "COLUMNS": "200"})  # fmt: skip
    finally:
        kill(proc, signal.SIGINT)
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert not (data / "temporal").exists()  # no Temporal server was started
    [trade, *_] = trades
    assert trade.sold_amount > 0 and trade.bought_amount > 0
    assert status.returncode == 0, status.stderr
    for symbol in ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"):
        assert symbol in status.stdout
    assert sum(status.stdout.count(p.value) for p in Phase) >= 4  # a phase on every row


@pytest.mark.parametrize("restart", ["resumed", "stale"])
def test_sigkill_after_an_order_was_sent_and_while_holding(tmp_path: Path, restart: str) -> None:
    """``restart``: the next process comes back within the stale limit (resends nothing,
    finds the buy by its client id) or past it (the buy is not sent again: FAILED, and
    ERROR finds it by its client id). Which one used to depend on the machine's load."""
    cfg = _config(tmp_path)
    data = tmp_path / "data"
    log = tmp_path / "engine.log"
    store = state_path(data)
    # 1: the paper exchange accepts the buy, then "loses the answer" for 60 s: killed then.
    p1 = spawn("starter.py", "--config", str(cfg), env={"PAPER__ACCEPT_THEN_HANG_S": "60"}, log=log)
    procs = [p1]
    try:
        [buy] = wait_until(lambda: _orders(cfg), timeout=240, what="a buy at the exchange")
        kill(p1)
        saved = read_state(store)
        assert saved.open_buy_orders[SYMBOL].client_order_id == buy.client_order_id
        decided = saved.coins[SYMBOL].trade.decision_id
        # 2: looks the buy up by its client id, never sends it again. Exits out of reach
        # while the test looks (a quick take-profit then a new entry would leave a second
        # trade's position to be seen here).
        env = {"TAKE_PROFIT_PCT": "50", "STOP_LOSS_PCT": "50", "MAX_POSITION_HOLD_MINUTES": "60"}
        if restart == "resumed":  # a stale limit (timeout + window) no restart reaches
            env["ORDER_ACTIVITY_TIMEOUT_SECONDS"] = "600"
        else:  # a restart slower than the stale limit (entry.py `_stale`), as under load
            st = load_settings(cfg)
            limit = st.order_activity_timeout_seconds + st.order_consistency_window_seconds
            stale_at = saved.coins[SYMBOL].trade.order.placed_ts + limit
            wait_until(lambda: time.time() > stale_at, timeout=60, what="the buy to be stale")
        p2 = spawn("starter.py", "--config", str(cfg), env=env, log=log)
        procs.append(p2)
        held = wait_until(
            lambda: read_state(store).held_assets.get(SYMBOL),
            timeout=60,
            what="the position after the first crash",
        )
        assert held.decision_id == decided  # the first buy's, recovered: no second decision
        assert held.amount == buy.filled
        assert [o.client_order_id for o in _orders(cfg)] == [buy.client_order_id]
        # 3: killed while holding; the next process sells that position, once.
        kill(p2)
        assert read_state(store).held_assets[SYMBOL] == held
        trades = _restart_until_traded(cfg, log, procs, "after the second crash")
    finally:
        for p in procs:
            kill(p)
    orders = _orders(cfg)
    placed = _decided_in_log(data)
    print(f"orders at the exchange: {len(orders)}; orders decided (phase log): {len(placed)}")
    # Exactly one order per decision: every order at the exchange was decided once.
    assert sorted(o.client_order_id for o in orders) == sorted(c for c, *_ in placed)
    assert len({c for c, *_ in placed}) == len(placed)
    [how] = [d.trigger for d in placed if d.client_order_id == buy.client_order_id]
    assert how == ("order_placed" if restart == "resumed" else "failed")  # the path taken
    [trade] = [t for t in trades if t.trade_id == held.decision_id]
    assert trade.bought_amount == buy.filled
    its_sells = {c for c, side, d, _ in placed if side == "sell" and d == held.decision_id}
    sold = sum((o.filled for o in orders if o.client_order_id in its_sells), Decimal(0))
    assert its_sells and trade.sold_amount == sold
    assert read_state(store).coins[SYMBOL].totals.trades_closed >= 1


def test_sigkill_right_after_a_sell_was_sent(tmp_path: Path) -> None:
    """The paper exchange accepts the sell, then "loses the answer": killed then. The next
    engine looks the sell up by its client id (never sends it again) and records the trade
    once."""
    cfg = _config(tmp_path)
    data = tmp_path / "data"
    log = tmp_path / "engine.log"
    store = state_path(data)
    p1 = spawn("starter.py", "--config", str(cfg), log=log)
    procs = [p1]
    try:
        held = wait_until(
            lambda: read_state(store).held_assets.get(SYMBOL), timeout=240, what="a position"
        )
        kill(p1)
        p2 = spawn("starter.py", "--config", str(cfg), env={"PAPER__ACCEPT_THEN_HANG_S": "60"},
                   log=log)  # fmt: skip
        procs.append(p2)
        [sell] = wait_until(
            lambda: [o for o in _orders(cfg) if o.side.value == "sell"],
            timeout=120,
            what="the sell at the exchange",
        )
        kill(p2)
        saved = read_state(store).coins[SYMBOL]
        assert saved.phase is Phase.PLACE_SELL and saved.trade.order.order_id is None
        assert saved.trade.order.client_order_id == sell.client_order_id
        trades = _restart_until_traded(cfg, log, procs, "after the crash")
    finally:
        for p in procs:
            kill(p)
    orders = _orders(cfg)
    placed = _decided_in_log(data)
    decided = {c for c, side, d, _ in placed if side == "sell" and d == held.decision_id}
    its_sells = [o for o in orders if o.side.value == "sell" and o.client_order_id in decided]
    print(f"orders at the exchange: {len(orders)}; sells of the trade: {len(its_sells)}")
    assert [o.client_order_id for o in orders].count(sell.client_order_id) == 1  # never resent
    assert sell.client_order_id in {o.client_order_id for o in its_sells}
    assert len({o.client_order_id for o in orders}) == len(orders)
    [trade] = [t for t in trades if t.trade_id == held.decision_id]  # recorded once
    assert trade.sold_amount == sum((o.filled for o in its_sells), Decimal(0))
    assert read_state(store).coins[SYMBOL].totals.trades_closed == 1


def test_stuck_reads_the_state_without_an_engine(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    out = run("starter.py", "--config", str(cfg), "stuck", timeout=30)
    assert out.returncode == 0, out.stderr
    assert "no symbol stuck for more than 60s" in out.stdout
    assert not (tmp_path / "data" / "temporal").exists()


def test_a_second_engine_on_the_data_dir_is_refused(tmp_path: Path) -> None:
    """The second process exits 2 naming the lock and the first one's pid; the status reads
    the state meanwhile; once the first is SIGKILLed a new engine starts."""
    cfg = _config(tmp_path)
    data = tmp_path / "data"
    log = tmp_path / "engine.log"
    first = spawn("starter.py", "--config", str(cfg), log=log)
    procs = [first]
    try:
        wait_until(
            lambda: SYMBOL in read_state(state_path(data)).coins, timeout=60, what="the state"
        )
        second = run("starter.py", "--config", str(cfg), timeout=60)
        assert second.returncode == 2, second.stderr
        lock = data / "legacy_state.sqlite.lock"
        assert f"{lock} is held by pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        status = run("starter.py", "--config", str(cfg), "status", "--once", "--show-idle",
                     env={"COLUMNS": "200"})  # fmt: skip
        assert status.returncode == 0 and SYMBOL in status.stdout, status.stderr
        kill(first)
        third = spawn("starter.py", "--config", str(cfg), log=log)
        procs.append(third)
        wait_until(
            lambda: log.read_text().count("legacy engine:") >= 2,
            timeout=60,
            what="the next engine's start",
        )
        kill(third, signal.SIGINT)
        assert third.returncode == 0, log.read_text()[-2000:]
    finally:
        for p in procs:
            kill(p)
