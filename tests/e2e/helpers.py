"""End-to-end helpers: write a config, run starter.py / worker.py as real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from temporalio.client import Client

from trader.core.state import CoinState
from workflows.symbol_trader import SymbolTrader

ROOT = Path(__file__).resolve().parents[2]


_FAST = {
    "market_poll_interval_s": "0.2",
    "backfill_minutes": "0",
    "drop_trigger_pct": '"0.15"',
    "anchor_mode": '"peak"',
    "take_profit_pct": '"0.15"',
    "stop_loss_pct": '"0.3"',
    "trailing_enabled": "false",
    "max_position_hold_minutes": '"0.5"',
    "cooldown_minutes": '"0.05"',
    "buy_order_timeout_seconds": "10",
    "sell_order_timeout_seconds": "5",
    "order_activity_timeout_seconds": "5",
    "order_consistency_window_seconds": "3",  # inside the 5 s attempts (with 1 s to create)
    "watch_checkpoint_seconds": "10",
    "watch_heartbeat_timeout_seconds": "5",
    "max_trades": "5",
}


def write_config(
    path: Path,
    *,
    address: str,
    data_dir: Path,
    queue: str,
    watchlist: tuple[str, ...] = ("BTC/USDT", "ETH/USDT"),
    extra: str = "",
    **settings: str,
) -> Path:
    """A fast-trading config: small drop trigger, quick exits, short cooldown.

    ``settings`` override those defaults (TOML literals: ``stop_loss_pct='"5"'``);
    ``extra`` is appended as raw lines (keys not set otherwise).
    """
    symbols = ", ".join(f'"{s}"' for s in watchlist)
    lines = "\n".join(f"{k} = {v}" for k, v in (_FAST | settings).items())
    path.write_text(f"""
temporal_address = "{address}"
data_dir = "{data_dir}"
task_queue = "{queue}"
watch_task_queue = "{queue}-watch"
watchlist = [{symbols}]
{lines}
{extra}

[paper]
seed = 11
tick_ms = 250
volatility_bps = "12"
""")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def spawn(*args: str, env: dict[str, str] | None = None, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=30)


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


SIM_KEYS = {"EXCHANGE_API_KEY": "sim-key", "EXCHANGE_API_SECRET": "sim-secret"}
"""Credentials of the local Binance server, given to workers through the environment only."""


def start_sim(tmp: Path, *args: str, name: str = "sim") -> tuple[subprocess.Popen[bytes], str]:
    """The local Binance-compatible server as a process of its own (it outlives workers
    that the test kills); returns the process and its base URL."""
    ready = tmp / f"{name}.url"
    proc = spawn(
        "-m",
        "trader.binance_sim",
        "--port",
        "0",
        "--ready-file",
        str(ready),
        "--data-dir",
        str(tmp / name),
        *args,
        log=tmp / f"{name}.log",
    )
    try:
        wait_until(
            lambda: ready.exists() or proc.poll() is not None,
            timeout=30,
            what="the local Binance server to listen",
        )
    except AssertionError:
        kill(proc)
        raise
    if proc.poll() is not None:
        raise AssertionError(f"sim exited: {(tmp / f'{name}.log').read_text()[-2000:]}")
    return proc, ready.read_text().strip()


def binance_config(url: str) -> str:
    """Config lines pointing the ccxt adapter at the local server."""
    return f'exchange = "binance"\nexchange_api_url = "{url}"\n'


async def query_state(client: Client, wf_id: str) -> CoinState | None:
    """The symbol's ``CoinState`` by query, or None while no worker can answer."""
    try:
        return await client.get_workflow_handle_for(SymbolTrader.run, wf_id).query(
            SymbolTrader.state_query
        )
    except Exception:  # not started yet, or no worker up to answer
        return None


async def wait_state(
    client: Client, wf_id: str, predicate: Callable[[CoinState], bool], *, timeout: float, what: str
) -> CoinState:
    """Poll the symbol's state until ``predicate`` holds; fail naming where it was."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = await query_state(client, wf_id)
        if state is not None and predicate(state):
            return state
        await asyncio.sleep(0.3)
    where = f"phase={state.phase.value} note={state.note!r}" if state else "no state"
    raise AssertionError(f"timed out after {timeout}s waiting for {what} ({where})")


async def terminate_queue(client: Client, queue: str) -> None:
    """Teardown: end every workflow a test left running on its task queue (and the
    validator's own queue named after it)."""
    queues = f'(TaskQueue = "{queue}" OR TaskQueue = "{queue}-validator")'
    async for wf in client.list_workflows(f'{queues} AND ExecutionStatus = "Running"'):
        await client.get_workflow_handle(wf.id).terminate("test over")
