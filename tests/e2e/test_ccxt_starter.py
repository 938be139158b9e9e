"""End to end with a real exchange client: starter.py (its own process) runs the watchlist
through ccxt against the local Binance server (its own process), API keys in the
environment only: they never appear in a workflow history or the (DEBUG) log. (Signed
requests with keys are covered by tests/exchange/test_ccxt_adapter.py.)"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.e2e.helpers import kill, run, spawn, start_sim, terminate_queue, write_config
from trader.core import ids

pytestmark = pytest.mark.e2e

KEY, SECRET = "e2eKEY5f0c2d7a9b", "e2eSECRET8e1b4c6d2a0f9e7c"


def _sim(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    return start_sim(
        tmp_path,
        "--generated",
        "--seed",
        "11",
        "--symbols",
        "BTC/USDT=65000",
        "ETH/USDT=3000",
        "--api-key",
        KEY,
        "--api-secret",
        SECRET,
        "--balance",
        "USDT=10000",
    )


def test_unknown_symbol_is_refused_through_ccxt(tmp_path):
    proc, url = _sim(tmp_path)
    try:
        cfg = write_config(
            tmp_path / "cfg.toml",
            address="127.0.0.1:1",
            data_dir=tmp_path,
            queue="q",
            watchlist=("BTC/USDT", "NOPE/USDT"),
            extra=f'exchange = "binance"\nexchange_api_url = "{url}"',
        )
        res = run("starter.py", "--config", str(cfg), "start", "--no-worker")
    finally:
        kill(proc, signal.SIGTERM)
    assert res.returncode == 2, res.stderr
    assert "NOPE/USDT" in res.stderr and "binance" in res.stderr
    assert "Traceback" not in res.stderr


async def test_starter_on_binance_keeps_keys_out_of_histories_and_logs(dev_env, tmp_path):
    sim, url = _sim(tmp_path)
    queue = f"e2e-ccxt-{uuid.uuid4().hex[:6]}"
    address = dev_env.client.service_client.config.target_host
    cfg = write_config(
        tmp_path / "cfg.toml",
        address=address,
        data_dir=tmp_path / "data",
        queue=queue,
        watchlist=("BTC/USDT",),
        extra=f'exchange = "binance"\nexchange_api_url = "{url}"\nlog_level = "DEBUG"',
    )
    env = {"EXCHANGE_API_KEY": KEY, "EXCHANGE_API_SECRET": SECRET}
    starter = spawn("starter.py", "--config", str(cfg), env=env, log=tmp_path / "starter.log")
    wf_id = ids.workflow_id_for("binance", "BTC/USDT")
    try:

        async def _phase() -> str | None:
            try:
                state = await dev_env.client.get_workflow_handle(wf_id).query("state")
            except Exception:  # not started yet, or no worker to answer
                return None
            return str(state["phase"])

        phase = None
        for _ in range(240):
            phase = await _phase()
            if phase not in (None, "warmup"):
                break
            await asyncio.sleep(0.25)
        assert phase in ("idle", "entry_eval", "place_buy", "wait_fill", "position"), phase
        history = await dev_env.client.get_workflow_handle(wf_id).fetch_history()
        text = history.to_json()
        assert "binance" in text  # the history is real and readable
        assert KEY not in text and SECRET not in text
    finally:
        kill(starter, signal.SIGTERM)
        kill(sim, signal.SIGTERM)
        await terminate_queue(dev_env.client, queue)
    log = (tmp_path / "starter.log").read_text()
    assert "ticker" in log.lower() or "spot markets loaded" in log  # DEBUG logging was on
    assert KEY not in log and SECRET not in log
    # A watch stopped by the worker's shutdown is logged at DEBUG with its traceback (benign);
    # nothing at WARNING or above may carry one.
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ )", log)
    loud = [r for r in records if re.match(r"\S+ \S+ (WARNING|ERROR|CRITICAL) ", r)]
    assert not [r for r in loud if "Traceback" in r], loud[-3:]
