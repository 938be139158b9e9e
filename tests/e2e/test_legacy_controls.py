"""The operator's controls of a running legacy engine (FSM_MODE=legacy, no Temporal):
``starter.py force-exit/pause/resume/stop`` run as separate processes against an engine
process, through its data dir (they need no lock on the engine's state)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.e2e.helpers import binance_config, kill, run, spawn, start_sim, wait_until, write_config
from tests.e2e.test_legacy import SYMBOL, _config, _orders
from trader.core.market import OrderSide
from trader.ledger import read_trades
from trader.legacy.store import read_state, state_path

pytestmark = pytest.mark.e2e


def _holding_config(tmp: Path) -> Path:
    """The e2e config, with exits far away: a position is held until the operator acts."""
    cfg = _config(tmp)
    text = cfg.read_text()
    for old, new in (
        ('take_profit_pct = "0.15"', 'take_profit_pct = "20"'),
        ('stop_loss_pct = "0.3"', 'stop_loss_pct = "20"'),
        ('max_position_hold_minutes = "0.5"', 'max_position_hold_minutes = "60"'),
        # A cooldown the CLI's round trips fit in: the refused force exit's note is read
        # before "cooldown over" replaces it (3 s lost that race under load).
        ('cooldown_minutes = "0.05"', 'cooldown_minutes = "0.5"'),
    ):
        assert old in text
        text = text.replace(old, new)
    cfg.write_text(text)
    return cfg


def _cli(cfg: Path, *command: str) -> tuple[int, str]:
    out = run("starter.py", "--config", str(cfg), *command, timeout=60)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, out.stdout + out.stderr


def _buys(cfg: Path) -> list[str]:
    return [o.client_order_id for o in _orders(cfg) if o.side is OrderSide.BUY]


def test_operator_controls_of_a_running_legacy_engine(tmp_path: Path) -> None:
    cfg = _holding_config(tmp_path)
    data = tmp_path / "data"
    log = tmp_path / "engine.log"
    store, ledger = state_path(data), data / "ledger.sqlite"
    engine = spawn("starter.py", "--config", str(cfg), log=log)
    try:
        first = wait_until(
            lambda: read_state(store).held_assets.get(SYMBOL),
            timeout=240,
            what=f"a position ({log.read_text()[-500:]})",
        )
        code, out = _cli(cfg, "pause")
        assert code == 0 and f"{SYMBOL}: accepted" in out and "entries paused" in out, out
        # force-exit of the held position: accepted, sold, recorded with its reason.
        code, out = _cli(cfg, "force-exit", SYMBOL, "--reason", "ops-test")
        assert code == 0, out
        assert f"{SYMBOL}: accepted in position: exiting: ops-test" in out
        [trade] = wait_until(
            lambda: ledger.exists() and read_trades(ledger),
            timeout=60,
            what="the force exit's trade",
        )
        assert trade.trade_id == first.decision_id and trade.exit_reason == "force_exit"
        assert trade.sold_amount > 0
        # Flat (and paused): refused, with the reason; nothing is sold.
        code, out = _cli(cfg, "force-exit", SYMBOL)
        assert code == 1 and f"{SYMBOL}: refused in " in out and "no position" in out, out
        saved = read_state(store).coins[SYMBOL]
        assert saved.controls.entries_paused and "force_exit (manual) ignored" in saved.note
        assert len(_buys(cfg)) == 1  # no entry while paused
        # resume: it buys again; stop --close-positions sells that position and ends it.
        code, out = _cli(cfg, "resume")
        assert code == 0 and "entries resumed" in out, out
        second = wait_until(
            lambda: (
                (h := read_state(store).held_assets.get(SYMBOL))
                and h.decision_id != first.decision_id
                and h
            ),
            timeout=240,
            what="a position after resume",
        )
        code, out = _cli(cfg, "stop", "--close-positions")
        assert code == 0 and "selling a held position first" in out, out
        engine.wait(timeout=120)  # the engine ends by itself once every symbol stopped
        assert engine.returncode == 0, log.read_text()[-2000:]
    finally:
        kill(engine)
    trades = {t.trade_id: t for t in read_trades(ledger)}
    assert trades[second.decision_id].exit_reason == "shutdown"
    assert len(trades) == 2
    saved = read_state(store).coins[SYMBOL]
    assert not saved.holds_position and "stopped by the operator" in saved.note
    sells = [o for o in _orders(cfg) if o.side is OrderSide.SELL]
    assert sum(o.filled for o in sells) == sum(t.sold_amount for t in trades.values())


@pytest.mark.parametrize("command", ["force-exit BTC/USDT", "stop", "reconcile", "pause"])
def test_a_command_without_a_running_engine_says_so(tmp_path: Path, command: str) -> None:
    """Nothing answers: exit 2 at once, and the request is withdrawn (an engine started
    later never applies it)."""
    cfg = _config(tmp_path)
    code, out = _cli(cfg, *command.split())
    assert code == 2
    assert f"no legacy engine on {tmp_path / 'data'} answered `{command.split()[0]}`" in out
    assert "none is running" in out and "withdrawn" in out
    assert not (tmp_path / "data" / "temporal").exists()


def test_the_wait_for_an_answer_is_the_commands_option(tmp_path: Path) -> None:
    """A live pid holds the lock but nothing answers: the command waits ``--wait`` seconds
    (default 15), then withdraws the request and says how long it waited."""
    cfg = _config(tmp_path)
    lock = tmp_path / "data" / "legacy_state.sqlite.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(str(os.getpid()))  # alive, and no engine
    code, out = _cli(cfg, "pause", "--wait", "1.5")
    assert code == 2 and "none took it within 1.5s" in out and "withdrawn" in out, out
    code, out = _cli(cfg, "force-exit", SYMBOL, "--wait", "0")
    assert code == 2 and "--wait must be > 0 seconds, got 0" in out, out


def test_reconcile_and_stop_of_a_running_engine(tmp_path: Path) -> None:
    """reconcile asks every symbol; stop (keeping positions) ends the engine with exit 0."""
    cfg = _config(tmp_path)
    data = tmp_path / "data"
    log = tmp_path / "engine.log"
    engine = spawn("starter.py", "--config", str(cfg), log=log)
    try:
        wait_until(lambda: SYMBOL in read_state(state_path(data)).coins, timeout=60, what="state")
        code, out = _cli(cfg, "reconcile", SYMBOL, "XRP/USDT")
        assert code == 1, out  # XRP/USDT is not this engine's
        assert f"{SYMBOL}: accepted" in out and "XRP/USDT: refused: not traded by this" in out
        wait_until(
            lambda: (
                "reconcile (operator)" in read_state(state_path(data)).coins[SYMBOL].note
                or "reconcile (operator)" in log.read_text()
            ),
            timeout=120,
            what="the reconcile's note",
        )
        code, out = _cli(cfg, "stop")
        assert code == 0 and "stops at its next quiet phase" in out, out
        engine.wait(timeout=120)
        assert engine.returncode == 0, log.read_text()[-2000:]
    finally:
        kill(engine, signal.SIGKILL)


def test_dry_run_smoke(tmp_path: Path) -> None:
    """GLOBAL_TRADING=false on the generated Binance market, no API keys: the legacy engine
    buys on the simulated account, the operator's force-exit sells it there, and the trade
    is recorded as simulated."""
    sim, url = start_sim(
        tmp_path, "--generated", "--seed", "11", "--symbols", "BTC/USDT=65000",
        "--balance", "USDT=10000",
    )  # fmt: skip
    data = tmp_path / "data"
    log = tmp_path / "engine.log"
    cfg = write_config(
        tmp_path / "cfg.toml",
        address="127.0.0.1:1",  # never used: no Temporal in legacy mode
        data_dir=data,
        queue="q",
        watchlist=("BTC/USDT",),
        take_profit_pct='"20"',
        stop_loss_pct='"20"',
        max_position_hold_minutes='"60"',
        extra=binance_config(url) + 'global_trading = false\nfsm_mode = "legacy"\n',
    )
    engine = spawn("starter.py", "--config", str(cfg), log=log)
    try:
        held = wait_until(
            lambda: read_state(state_path(data)).held_assets.get("BTC/USDT"),
            timeout=240,
            what=f"a dry-run position ({log.read_text()[-500:]})",
        )
        code, out = _cli(cfg, "force-exit", "BTC/USDT", "--reason", "smoke")
        assert code == 0 and "accepted in position" in out, out
        ledger = data / "ledger.sqlite"
        [trade] = wait_until(
            lambda: ledger.exists() and read_trades(ledger), timeout=60, what="trade"
        )
        kill(engine, signal.SIGINT)
        assert engine.returncode == 0, log.read_text()[-2000:]
    finally:
        kill(engine)
        kill(sim, signal.SIGTERM)
    assert "DRY-RUN (GLOBAL_TRADING=false)" in log.read_text()
    assert trade.trade_id == held.decision_id and trade.exit_reason == "force_exit"
    assert trade.simulated and trade.sold_amount > 0
    assert read_state(state_path(data)).coins["BTC/USDT"].simulated
    assert (data / "dryrun-binance.sqlite").exists()  # the simulated account's orders
