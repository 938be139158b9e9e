"""``python -m trader.binance_sim`` as a process: ready file, requests, SIGTERM, restart."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from .conftest import ccxt_client


def start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    ready = tmp_path / "ready"
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trader.binance_sim",
            "--port",
            "0",
            "--ready-file",
            str(ready),
            "--data-dir",
            str(tmp_path / "data"),
            "--static",
            "BTC/USDT=65000",
            "--balance",
            "USDT=10000",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "server did not become ready"
        time.sleep(0.05)
    url = ready.read_text().strip()
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == f"listening on {url}"
    return proc, url


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    return out


async def test_process_serves_stops_on_sigterm_and_keeps_orders_across_restarts(tmp_path):
    proc, url = start(tmp_path)
    try:
        assert url.startswith("http://127.0.0.1:")
        client = ccxt_client(url)
        try:
            assert abs(await client.fetch_time() - time.time() * 1000) < 5_000
            order = await client.create_order(
                "BTC/USDT",
                "limit",
                "buy",
                0.01,
                60000,
                {"timeInForce": "GTC", "newClientOrderId": "keep-1"},
            )
            assert order["status"] == "open"
        finally:
            await client.close()
    finally:
        out = stop(proc)
    assert "stopped" in out

    proc, url = start(tmp_path, "--balance", "USDT=1")  # a used data dir keeps its balances
    try:
        client = ccxt_client(url)
        try:
            found = await client.fetch_order(None, "BTC/USDT", {"clientOrderId": "keep-1"})
            assert found["status"] == "open" and found["id"] == order["id"]
            balance = await client.fetch_balance()
            assert balance["USDT"]["total"] == 10000 and balance["USDT"]["used"] == 600
        finally:
            await client.close()
    finally:
        stop(proc)
