"""End to end on a real Temporal dev server: starter.py launches a watchlist on the paper
exchange in its own process, trades complete, and the CLI operates it."""

from __future__ import annotations

import re
import signal
import uuid

import pytest

from tests.e2e.helpers import kill, run, spawn, terminate_queue, wait_until, write_config
from trader.core.phases import Phase
from trader.ledger import read_trades
from trader.runtime.commands import RUNNING_TRADERS

pytestmark = pytest.mark.e2e


async def test_starter_runs_full_trades_and_cli_operates_them(dev_env, tmp_path):
    address = dev_env.client.service_client.config.target_host
    queue = f"e2e-{uuid.uuid4().hex[:6]}"
    # The worker also runs the live status table (ENABLE_RICH_TABLE): piped into the log,
    # Rich writes its last frame when the worker stops.
    cfg = write_config(
        tmp_path / "cfg.toml",
        address=address,
        data_dir=tmp_path / "data",
        queue=queue,
        extra="enable_rich_table = true\nrich_table_show_idle = true",
    )
    proc = spawn("starter.py", "--config", str(cfg), log=tmp_path / "starter.log")
    try:
        wait_until(
            lambda: (tmp_path / "data" / "ledger.sqlite").exists(),
            timeout=60,
            what="the worker to open the ledger",
        )
        ledger = tmp_path / "data" / "ledger.sqlite"
        trades = wait_until(lambda: read_trades(ledger), timeout=240, what="a completed trade")
        assert trades[0].simulated and trades[0].exit_reason

        # Starting again does not duplicate anything.
        again = run("starter.py", "--config", str(cfg), "start", "--no-worker")
        assert again.returncode == 0, again.stderr
        running = [
            wf
            async for wf in dev_env.client.list_workflows(
                f'{RUNNING_TRADERS} AND TaskQueue = "{queue}"'
            )
        ]
        assert len(running) == 2

        status = run("starter.py", "--config", str(cfg), "status", "--once", "--show-idle")
        assert status.returncode == 0, status.stderr
        assert "BTC/USDT" in status.stdout and "ETH/USDT" in status.stdout
        phases = {p.value for p in Phase}
        assert any(p in status.stdout for p in phases)

        fx = run("starter.py", "--config", str(cfg), "force-exit", "BTC/USDT", "--reason", "e2e")
        assert fx.returncode == 0, fx.stderr
        assert "accepted" in fx.stdout or "rejected" in fx.stdout

        stop = run("starter.py", "--config", str(cfg), "stop", "--close-positions")
        assert stop.returncode == 0 and "stopping" in stop.stdout
    finally:
        kill(proc, signal.SIGTERM)
        await terminate_queue(dev_env.client, queue)
    log = (tmp_path / "starter.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    # The worker's table, last frame (the symbols may have stopped by then).
    frame = log[log.rindex("durable-trader") :]
    assert "PnL %" in frame and re.search(r"\d+ symbols · \d\d:\d\d:\d\d UTC", frame), frame


def test_bad_config_fails_with_a_clear_message(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('drop_trigger_pct = "abc"\n')
    res = run("starter.py", "--config", str(cfg), "status", "--once")
    assert res.returncode == 2
    assert "drop_trigger_pct" in res.stderr.lower() and "Traceback" not in res.stderr


def test_unknown_symbol_is_refused_before_anything_starts(tmp_path):
    cfg = write_config(
        tmp_path / "cfg.toml",
        address="127.0.0.1:1",
        data_dir=tmp_path,
        queue="q",
        watchlist=("BTC/USDT", "NOPE/USDT"),
    )
    res = run("starter.py", "--config", str(cfg), "start", "--no-worker")
    assert res.returncode == 2
    assert "NOPE/USDT" in res.stderr and "Traceback" not in res.stderr


def test_a_subcommand_help_as_a_process():
    # One process is enough here: every command's help is checked in-process, from the
    # parser itself (tests/test_cli.py); eight processes cost 30 s of the suite.
    res = run("starter.py", "force-exit", "--help")
    assert res.returncode == 0 and "usage: starter.py force-exit" in res.stdout
