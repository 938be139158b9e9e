"""Stuck detection for real: a buy that never fills holds a symbol in WAIT_FILL on the dev
server; `starter.py stuck` lists it (exit code 1) from one visibility query, never the idle
symbol, and the worker's `trader_stuck_symbols` gauge counts it."""

from __future__ import annotations

import asyncio
import subprocess
import time
from decimal import Decimal as D
from typing import Any

import pytest

from tests.e2e.helpers import run
from tests.workflows.harness import bench
from trader.core.params import BuyOrderMode
from trader.core.phases import Phase
from trader.exchange.paper import PaperFaults
from trader.observe.metrics import TraderMetrics
from trader.runtime.stuck import report_stuck, stuck_query, stuck_symbols

pytestmark = pytest.mark.e2e


def _stuck_cli(cfg, timeout: str = "1") -> subprocess.CompletedProcess[str]:
    return run("starter.py", "--config", str(cfg), "stuck", "--timeout", timeout)


def _poll(check, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


async def test_unfilled_buy_is_listed_idle_symbol_is_not(dev_env, tmp_path):
    client = dev_env.client
    address = client.service_client.config.target_host
    async with bench(client, tmp_path, faults=PaperFaults(max_fill_ratio=D(0))) as b:
        cfg = tmp_path / "cfg.toml"
        cfg.write_text(
            f'temporal_address = "{address}"\ntask_queue = "{b.task_queue}"\n'
            f'data_dir = "{tmp_path / "data"}"\n'
        )
        gtc: dict[str, Any] = {"buy_order_mode": BuyOrderMode.GTC, "buy_order_timeout_seconds": 600}
        btc = await b.start("BTC/USDT", **gtc)
        eth = await b.start("ETH/USDT", **gtc)
        await b.wait_phase(btc, Phase.IDLE)
        await b.wait_phase(eth, Phase.IDLE)

        # Only idle symbols: nothing is stuck, exit code 0 (once visibility caught up).
        idle = await asyncio.to_thread(
            _poll,
            lambda: (r := _stuck_cli(cfg)).returncode == 0 and r or None,
            timeout=30,
            what="nothing stuck",
        )
        assert "no symbol stuck" in idle.stdout

        b.set_price("BTC/USDT", "97.90")  # BTC buys; the GTC order never fills
        await b.wait_phase(btc, Phase.WAIT_FILL)
        stuck = await asyncio.to_thread(
            _poll,
            lambda: (r := _stuck_cli(cfg)).returncode == 1 and btc.id in r.stdout and r or None,
            timeout=60,
            what="BTC listed as stuck",
        )
        assert "wait_fill" in stuck.stdout
        assert eth.id not in stuck.stdout
        assert stuck.stdout.startswith("1 symbol(s) stuck")

        # A generous timeout: WAIT_FILL is young enough, nothing listed.
        assert _stuck_cli(cfg, timeout="3600").returncode == 0
        rows = await stuck_symbols(client, timeout_s=1, task_queue=b.task_queue)
        assert [(r.workflow_id, r.phase) for r in rows] == [(btc.id, "wait_fill")]

        # The worker's gauge comes from the same query.
        metrics, stop = TraderMetrics("w-test"), asyncio.Event()
        task = asyncio.create_task(
            report_stuck(
                client, metrics, timeout_s=1, interval_s=0.2, task_queue=b.task_queue, stop=stop
            )
        )
        try:
            deadline = time.monotonic() + 10
            while (
                metrics.registry.get_sample_value("trader_stuck_symbols", {"worker": "w-test"}) != 1
            ):
                assert time.monotonic() < deadline, "gauge never reached 1"
                await asyncio.sleep(0.1)
            # ... and so do the symbols per phase (this bench's task queue only).
            by_phase = {
                p.value: metrics.registry.get_sample_value(
                    "trader_symbols", {"phase": p.value, "worker": "w-test"}
                )
                for p in Phase
            }
            assert by_phase == {**dict.fromkeys(by_phase, 0.0), "wait_fill": 1.0, "idle": 1.0}
        finally:
            stop.set()
            await task


def test_bad_timeout_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="stuck timeout must be >= 0"):
        stuck_query(timeout_s=-1, task_queue="q")
    result = run("starter.py", "stuck", "--timeout", "soon")
    assert result.returncode == 2 and "invalid float value" in result.stderr


def test_query_uses_the_search_attributes_and_skips_quiet_phases():
    query = stuck_query(timeout_s=60, task_queue="q")
    assert 'TradingPhase IN ("warmup", "entry_eval", "place_buy", "wait_fill"' in query
    assert all(f'"{p}"' not in query for p in ("idle", "position", "cooldown"))
    assert 'PhaseSince < "' in query and 'TaskQueue = "q"' in query
