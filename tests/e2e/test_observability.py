"""Observability end to end: real worker processes with ENABLE_PROMETHEUS on free ports,
a real lifecycle on the dev server, /metrics scraped over HTTP, the JSONL log read back.

Worker 1 trades, is stopped (SIGTERM), worker 2 replays the history and carries on: the two
logs together are exactly the workflow's phase_history (nothing lost, nothing twice),
worker 2's counters hold only what worker 2 did (the replayed part is not counted again),
and both workers' counters summed over the ``worker`` label are the whole history.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import urllib.request
import uuid
from collections import Counter
from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.helpers import (
    free_port,
    kill,
    run,
    spawn,
    terminate_queue,
    wait_state,
    write_config,
)
from trader.config import load_settings
from trader.core import ids
from trader.core.state import CoinState
from trader.exchange.paper import PaperExchange
from trader.ledger import read_trades
from trader.observe.phase_log import read_events
from trader.runtime.exchange import build_exchange
from trader.runtime.launch import resumable_state

pytestmark = pytest.mark.e2e

SYMBOL = "BNB/USDT"  # no other e2e test uses it: its completed workflow id stays


Metrics = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""Scraped samples by (name, labels)."""


def scrape(port: int) -> Metrics:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Metrics, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def worker_env(port: int, sdk_port: int, log) -> dict[str, str]:
    return {
        "ENABLE_PROMETHEUS": "true",
        "PROMETHEUS_PORT": str(port),
        "TEMPORAL_METRICS_PORT": str(sdk_port),
        "PHASE_LOG_FILE": str(log),
    }


async def test_metrics_and_phase_log_across_a_worker_restart(dev_env, tmp_path):
    client = dev_env.client
    address = client.service_client.config.target_host
    queue = f"obs-{uuid.uuid4().hex[:6]}"
    cfg = write_config(
        tmp_path / "cfg.toml",
        address=address,
        data_dir=tmp_path / "data",
        queue=queue,
        watchlist=(SYMBOL,),
        extra="phase_history_limit = 1000\nstuck_check_interval_seconds = 1",
    )
    wf_id = ids.workflow_id_for("paper", SYMBOL)
    started = run("starter.py", "--config", str(cfg), "start", "--no-worker")
    assert started.returncode == 0, started.stderr
    log1, log2 = tmp_path / "w1.jsonl", tmp_path / "w2.jsonl"
    p1, s1, p2, s2 = (free_port() for _ in range(4))
    out = tmp_path / "workers.log"
    w1 = spawn("worker.py", "--config", str(cfg), env=worker_env(p1, s1, log1), log=out)
    workers = [w1]
    try:
        await wait_state(
            client,
            wf_id,
            lambda s: s.totals.trades_closed >= 1,
            timeout=240,
            what="a closed trade on worker 1",
        )
        # The Temporal SDK's own metrics, on their own port, labelled with the worker.
        sdk = scrape(s1)
        assert any(
            name.startswith("temporal_") and dict(labels).get("worker") for name, labels in sdk
        )
        # Quiesce (paused entries, back in IDLE: no transition until resumed) so worker 1's
        # counters can be read exactly before it goes.
        paused = run("starter.py", "--config", str(cfg), "pause")
        assert paused.returncode == 0, paused.stderr
        await wait_state(
            client,
            wf_id,
            lambda s: s.controls.entries_paused and s.phase.value == "idle",
            timeout=120,
            what="paused in IDLE",
        )
        metrics1 = scrape(p1)
        kill(w1, signal.SIGTERM)  # graceful: finishes its tasks and flushes its log
        seen_by_w1 = len(read_events(log1))
        assert seen_by_w1 >= 10

        w2 = spawn("worker.py", "--config", str(cfg), env=worker_env(p2, s2, log2), log=out)
        workers.append(w2)
        resumed = run("starter.py", "--config", str(cfg), "resume")
        assert resumed.returncode == 0, resumed.stderr
        await wait_state(
            client,
            wf_id,
            lambda s: len(s.phase_history) >= seen_by_w1 + 3,
            timeout=240,
            what="worker 2 to make transitions",
        )
        stop = run("starter.py", "--config", str(cfg), "stop")
        assert stop.returncode == 0, stop.stderr
        final = await asyncio.wait_for(
            client.get_workflow_handle(wf_id, result_type=CoinState).result(), timeout=120
        )
        await asyncio.sleep(1.5)  # one stuck-check period after the workflow ended
        metrics = scrape(p2)
        kill(w2, signal.SIGTERM)
    finally:
        for w in workers:
            kill(w)
        await terminate_queue(client, queue)

    first, second = read_events(log1), read_events(log2)
    assert first and second
    assert [(e.ts, e.src, e.dst, e.trigger, e.reason) for e in first + second] == [
        (r.ts, r.src.value, r.dst.value, r.trigger.value, r.note) for r in final.phase_history
    ]
    keys = [(e.run_id, e.seq) for e in first + second]
    assert len(set(keys)) == len(keys)

    # Worker 2 counted exactly its own transitions: the replayed ones are not counted again.
    [worker2] = {
        dict(labels)["worker"] for name, labels in metrics if name == "trader_transitions_total"
    }
    edges = Counter((e.src, e.dst, e.trigger) for e in second)
    for (src, dst, trigger), n in edges.items():
        assert (
            sample(
                metrics,
                "trader_transitions_total",
                src=src,
                dst=dst,
                trigger=trigger,
                worker=worker2,
            )
            == n
        )
    assert (
        sum(v for (name, _), v in metrics.items() if name == "trader_transitions_total")
        == len(second)
        < len(final.phase_history)
    )
    # Summed over the workers (sum without (worker)), the counters are the whole history.
    total: Counter[tuple[str, str, str]] = Counter()
    for samples in (metrics1, metrics):
        for (name, labels), v in samples.items():
            if name == "trader_transitions_total":
                lab = dict(labels)
                total[(lab["src"], lab["dst"], lab["trigger"])] += int(v)
    assert total == Counter(
        (r.src.value, r.dst.value, r.trigger.value) for r in final.phase_history
    )
    assert {
        dict(labels)["worker"] for name, labels in metrics1 if name == "trader_transitions_total"
    } != {worker2}

    # Orders: both workers' "placed" together are the orders at the exchange.
    exchange = build_exchange(load_settings(cfg))
    try:
        assert isinstance(exchange, PaperExchange)  # the config's exchange is paper
        orders = exchange.all_orders()
    finally:
        await exchange.close()
    placed = Counter(e.src for e in first + second if e.trigger == "order_placed")
    assert placed["place_buy"] + placed["place_sell"] == len(orders)
    placed2 = Counter(e.src for e in second if e.trigger == "order_placed")
    for side, src in (("buy", "place_buy"), ("sell", "place_sell")):
        assert (
            sample(
                metrics,
                "trader_orders_total",
                symbol=SYMBOL,
                side=side,
                outcome="placed",
                worker=worker2,
            )
            == placed2[src]
        )

    # PnL: the lifetime gauge is the ledger's total; worker 2's counters its own trades.
    trades = read_trades(tmp_path / "data" / "ledger.sqlite")
    assert final.totals.realized_pnl == sum((t.net_pnl for t in trades), Decimal(0))
    assert sample(metrics, "trader_realized_pnl_quote", symbol=SYMBOL, worker=worker2) == float(
        final.totals.realized_pnl
    )
    closed2 = {e.trade_id for e in second if e.trigger == "recorded"}
    net2 = sum((t.net_pnl for t in trades if t.trade_id in closed2), Decimal(0))
    assert sample(
        metrics, "trader_realized_profit_quote_total", symbol=SYMBOL, worker=worker2
    ) - sample(
        metrics, "trader_realized_loss_quote_total", symbol=SYMBOL, worker=worker2
    ) == pytest.approx(float(net2), abs=1e-9)
    assert sample(metrics, "trader_trades_closed_total", symbol=SYMBOL, worker=worker2) == len(
        closed2
    )
    assert (
        sample(metrics, "trader_phase", symbol=SYMBOL, phase=final.phase.value, worker=worker2) == 1
    )
    assert ("trader_stuck_symbols", frozenset({("worker", worker2)})) in metrics
    assert sample(metrics, "trader_stuck_symbols", worker=worker2) == 0
    # The next start resumes a stopped symbol that still held something.
    resumable = await resumable_state(client.get_workflow_handle(wf_id, result_type=CoinState))
    assert (resumable is None) == (
        final.phase.value == "idle" and not final.holds_position and not final.has_inventory
    )
    log_text = out.read_text()
    assert "Traceback" not in log_text, log_text[-3000:]


@pytest.mark.parametrize("setting", ["PROMETHEUS_PORT", "TEMPORAL_METRICS_PORT", "PHASE_LOG_FILE"])
def test_unusable_port_or_log_file_is_a_clear_error(dev_env, tmp_path, setting):
    address = dev_env.client.service_client.config.target_host
    cfg = write_config(
        tmp_path / "cfg.toml",
        address=address,
        data_dir=tmp_path / "data",
        queue=f"bad-{uuid.uuid4().hex[:6]}",
    )
    (tmp_path / "a-file").write_text("")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {
            "ENABLE_PROMETHEUS": "true",
            "PROMETHEUS_PORT": str(free_port()),
            "TEMPORAL_METRICS_PORT": "0",
            "PHASE_LOG_FILE": str(tmp_path / "ok.jsonl"),
        }
        env[setting] = (
            str(tmp_path / "a-file" / "x.jsonl")
            if setting == "PHASE_LOG_FILE"
            else str(taken.getsockname()[1])
        )
        result = run("worker.py", "--config", str(cfg), env=env, timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"\nerror: {setting}:" in "\n" + result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


async def test_routine_watch_cancellations_log_no_traceback(dev_env, tmp_path):
    """A watch cancelled because its workflow is gone (terminated, or stopped while the
    watch ran) or because its worker is stopping is routine: the log must not fill with
    tracebacks that would hide real failures."""
    client = dev_env.client
    address = client.service_client.config.target_host
    queue = f"term-{uuid.uuid4().hex[:6]}"
    cfg = write_config(
        tmp_path / "cfg.toml",
        address=address,
        data_dir=tmp_path / "data",
        queue=queue,
        watchlist=("XRP/USDT",),
    )
    # A 50 % drop never comes: the symbol idles with its watch running.
    started = run(
        "starter.py", "--config", str(cfg), "start", "--no-worker", env={"DROP_TRIGGER_PCT": "50"}
    )
    assert started.returncode == 0, started.stderr
    out = tmp_path / "worker.log"
    worker = spawn("worker.py", "--config", str(cfg), log=out)
    try:
        wf_id = ids.workflow_id_for("paper", "XRP/USDT")
        await wait_state(
            client,
            wf_id,
            lambda s: s.phase.value == "idle",
            timeout=60,
            what="IDLE (watch running)",
        )
        await asyncio.sleep(1)
        await client.get_workflow_handle(wf_id).terminate("operator")
        # The watch learns at its next heartbeat (throttled to 0.8 x 5 s) that it is gone.
        await asyncio.sleep(6)
        kill(worker, signal.SIGTERM)
        assert worker.returncode == 0
    finally:
        kill(worker)
        await terminate_queue(client, queue)
    text = out.read_text()
    assert "Beginning worker shutdown" in text  # (before the fix: a warning + traceback)
    assert "Traceback" not in text, text[-3000:]
