"""Load bench (issue 13): N symbols on one or two worker processes and the dev server.

    python -m bench.load --symbols 100,500 --tuning busy,idle --workers 1 --seconds 240
    python -m bench.load --design naive --symbols 100 --tuning busy --seconds 240
    python -m bench.load ... --json out.json      # every figure, besides the table

Each run gets a fresh data dir: the real ``temporal`` dev server as the embedded default
starts it (persistent SQLite, ``trader/runtime/devserver.py``), ``worker.py`` as separate
processes (or ``bench.naive.worker`` for ``--design naive``) on one task queue, and the
paper exchange on a generated market of N symbols named ``S0000/USDT`` ... Tunings:
``busy`` = config/demo.toml's trading and market parameters, ``idle`` = the seed defaults.
The account is funded far beyond what N symbols can spend, so only MAX_TRADES limits.

Measured per run (``bench/load_stats.py`` reads the histories): worker and server CPU
(% of one core, whole window and its second half) and RSS from /proc; the watch
checkpoint (scheduled -> completed of a watch that returned without firing, planned
``watch_checkpoint_seconds``); slot grant (``acquire_slot`` scheduled -> completed);
trigger -> order (the ticker that fired to the order's exchange timestamp); history
events per idle and held symbol-hour; failed and timed-out workflow tasks and activities;
symbols in ERROR, past WARMUP and stuck in a working phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus

from bench.load_procs import ROOT, Sampled, free_port, spawn, stop
from bench.load_stats import LoadStats
from bench.naive.contracts import TICK_S, NaiveInput
from bench.naive.worker import naive_queue
from trader import search as sa
from trader.config import Settings, load_settings
from trader.core.ids import symbol_slug
from trader.runtime.client import connect
from trader.runtime.devserver import start_dev_server
from trader.runtime.launch import start_watchlist
from trader.runtime.stuck import stuck_symbols

DEMO = ROOT / "config" / "demo.toml"
_SAMPLE_S = 5.0
_FETCH_CONCURRENCY = 16
_LAUNCH_CONCURRENCY = 64


def symbols(n: int) -> dict[str, str]:
    """N generated markets with start prices across magnitudes (0.0011 ... 1,600)."""
    return {f"S{i:04d}/USDT": f"{(1 + i % 7 / 10) * 10 ** (i % 7 - 3):.6g}" for i in range(n)}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, str) else str(value)


def write_config(path: Path, *, n: int, tuning: str, port: int, data_dir: Path) -> Path:
    top: dict[str, Any] = {}
    paper: dict[str, Any] = {}
    if tuning == "busy":
        demo = tomllib.loads(DEMO.read_text())
        paper = demo.pop("paper", {})
        top = {k: v for k, v in demo.items() if k != "watchlist"}
    markets = symbols(n)
    lines = [
        f'temporal_address = "127.0.0.1:{port}"',
        f"data_dir = {_toml(str(data_dir))}",
        'task_queue = "load"',
        'watch_task_queue = "load-watch"',
        f"watchlist = [{', '.join(_toml(s) for s in markets)}]",
        *(f"{k} = {_toml(v)}" for k, v in top.items()),
        "[paper]",
        'quote_balance = "1000000000"',
        *(f"{k} = {_toml(v)}" for k, v in paper.items()),
        "[paper.start_prices]",
        *(f'"{s}" = "{p}"' for s, p in markets.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


async def _launch(client: Client, settings: Settings, design: str) -> float:
    t0 = time.perf_counter()
    if design == "trader":
        await start_watchlist(client, settings)
    else:
        gate = asyncio.Semaphore(_LAUNCH_CONCURRENCY)

        async def one(symbol: str) -> None:
            async with gate:
                await client.start_workflow(
                    "NaiveTrader",
                    NaiveInput(symbol=symbol, params=settings.trader_params()),
                    id=f"naive:paper:{symbol_slug(symbol)}",
                    task_queue=naive_queue(settings.task_queue),
                )

        await asyncio.gather(*(one(s) for s in settings.watchlist))
    return time.perf_counter() - t0


async def _wait_pollers(client: Client, queue: str, workers: int, procs: list[Any]) -> None:
    """Until ``workers`` processes poll ``queue`` (the window starts after their start-up)."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = await client.workflow_service.describe_task_queue(request)
        if len({p.identity for p in response.pollers}) >= workers:
            return
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a worker exited during start-up (see its log)")
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{workers} worker(s) did not poll {queue} within 120 s")


async def _histories(client: Client, query: str, end: float) -> tuple[LoadStats, int, int]:
    """Every run (continued-as-new ones too) of the query; how many ran a watch."""
    stats, runs, watching = LoadStats(), [], set()
    async for wf in client.list_workflows(query):
        runs.append((wf.id, wf.run_id))
    gate = asyncio.Semaphore(_FETCH_CONCURRENCY)

    async def one(wid: str, rid: str | None) -> None:
        async with gate:
            history = await client.get_workflow_handle(wid, run_id=rid).fetch_history()
        if stats.add(list(history.events), end=end):
            watching.add(wid)

    await asyncio.gather(*(one(w, r) for w, r in runs))
    return stats, len(runs), len(watching)


async def _phases(client: Client) -> dict[str, int]:
    phases: dict[str, int] = {}
    query = 'TaskQueue = "load" AND WorkflowType = "SymbolTrader"'
    async for wf in client.list_workflows(query):
        if wf.status == WorkflowExecutionStatus.RUNNING:
            phase = wf.typed_search_attributes.get(sa.TRADING_PHASE) or "?"
            phases[phase] = phases.get(phase, 0) + 1
    return phases


async def run_one(
    *, design: str, n: int, tuning: str, workers: int, seconds: float, keep: Path | None
) -> dict[str, Any]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix=f"load-{design}-{n}-{tuning}-", dir=keep))
    port = free_port()
    cfg = write_config(base / "load.toml", n=n, tuning=tuning, port=port, data_dir=base / "data")
    settings = load_settings(cfg)
    load_before = os.getloadavg()
    server = start_dev_server(data_dir=base / "temporal", port=port, ui_port=free_port())
    assert server is not None
    module = ["worker.py"] if design == "trader" else ["-m", "bench.naive.worker"]
    procs = [
        spawn([*module, "--config", str(cfg)], base / f"worker{i}.log") for i in range(workers)
    ]
    try:
        client = await connect(f"127.0.0.1:{port}")
        queue = "load" if design == "trader" else naive_queue("load")
        await _wait_pollers(client, queue, workers, procs)
        sampled = [Sampled("server", server.pid)] + [
            Sampled(f"w{i}", p.pid) for i, p in enumerate(procs)
        ]
        # Warm-ups start with the launch: their clock and the workers' CPU count from here.
        cpu0, t0, m0 = sum(s.cpu_s() for s in sampled[1:]), time.time(), time.monotonic()
        launch_s = await _launch(client, settings, design)
        deadline = time.monotonic() + seconds
        while True:
            for s in sampled:
                s.sample()
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(_SAMPLE_S, max(deadline - time.monotonic(), 0)))
        end = time.time()
        phases = await _phases(client) if design == "trader" else {}
        stuck = await stuck_symbols(
            client, timeout_s=settings.stuck_timeout_seconds, task_queue="load"
        )
        alive = [p.poll() is None for p in procs]
        for p in procs:
            stop(p)
        wf_type = "SymbolTrader" if design == "trader" else "NaiveTrader"
        stats, runs, watching = await _histories(client, f'WorkflowType = "{wf_type}"', end)
        portfolio_stats, _, _ = await _histories(client, 'WorkflowType = "Portfolio"', end)
    finally:
        for p in procs:
            stop(p)
        stop(server)
    server_s, worker_s = sampled[0].summary(), [s.summary() for s in sampled[1:]]
    # The workers' CPU from the launch to the last warm-up (the first sample after it).
    until = m0 + max(stats.warmed_at, default=end) - t0
    warm_cpu_s = sum(s.cpu_s_at(until) for s in sampled[1:]) - cpu0
    result = {
        "design": design,
        "symbols": n,
        "tuning": tuning,
        "workers": workers,
        "seconds": seconds,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "launch_s": round(launch_s, 2),
        "worker_cpu_pct": round(sum(w["cpu_pct"] for w in worker_s), 1),
        "worker_cpu_pct_second_half": round(sum(w["cpu_pct_second_half"] for w in worker_s), 1),
        "worker_rss_mb": round(sum(w["rss_mb_max"] for w in worker_s), 1),
        "workers_detail": worker_s,
        "workers_alive_at_end": all(alive),
        "worker_cpu_wait_pct": max(w["cpu_wait_pct"] for w in worker_s),
        "server_cpu_pct": server_s["cpu_pct"],
        "server_cpu_wait_pct": server_s["cpu_wait_pct"],
        "server_cpu_pct_second_half": server_s["cpu_pct_second_half"],
        "server_rss_mb": server_s["rss_mb_max"],
        "runs": runs,
        "symbols_watching": watching,
        "phases": phases,
        "symbols_in_error": phases.get("error", 0) if design == "trader" else None,
        "symbols_past_warmup": sum(v for k, v in phases.items() if k != "warmup")
        if phases
        else watching,
        "symbols_stuck": None if stuck is None else len(stuck),
        "portfolio_events": portfolio_stats.events,
        "warmup": stats.warmup_summary(symbols=n, since=t0, cpu_s=warm_cpu_s),
        **stats.summary(
            checkpoint_s=settings.watch_checkpoint_seconds if design == "trader" else TICK_S
        ),
        "data_dir": str(base) if keep else None,
    }
    if keep is None:
        shutil.rmtree(base, ignore_errors=True)
    return result


def _p(d: dict[str, Any]) -> str:
    return "–" if d["p50"] is None else f"{d['p50']:g} / {d['p99']:g}"


def _v(value: object) -> str:
    return "–" if value is None else str(value)


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| design | N | tuning | workers | worker CPU % | worker RSS MB | server CPU % | "
        "server RSS MB | checkpoint p50 / p99 s (planned) | slot grant p50 / p99 s | "
        "trigger → buy p50 / p99 s | trigger → sell p50 / p99 s | events / idle sym-h | "
        "events / held sym-h | failed WFT / act | ERROR | stuck | past WARMUP | exits |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        f = r["failures"]
        wft = f.get("workflow_task_failed", 0) + f.get("workflow_task_timed_out", 0)
        act = f.get("activity_failed", 0) + f.get("activity_timed_out", 0)
        lines.append(
            f"| {r['design']} | {r['symbols']} | {r['tuning']} | {r['workers']} | "
            f"{r['worker_cpu_pct']} | {r['worker_rss_mb']:.0f} | {r['server_cpu_pct']} | "
            f"{r['server_rss_mb']:.0f} | {_p(r['checkpoint_actual_s'])} "
            f"({r['checkpoint_planned_s']:g}) | {_p(r['slot_grant_s'])} | "
            f"{_p(r['entry_trigger_to_order_s'])} | {_p(r['exit_trigger_to_order_s'])} | "
            f"{r['events_per_idle_symbol_hour']} | {r['events_per_held_symbol_hour']} | "
            f"{wft} / {act} | {_v(r['symbols_in_error'])} | {_v(r['symbols_stuck'])} | "
            f"{r['symbols_past_warmup']} | {r['exit_trigger_to_order_s']['n']} |"
        )
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--symbols", type=_ints, default=[100])
    parser.add_argument("--tuning", type=lambda s: s.split(","), default=["busy"])
    parser.add_argument("--workers", type=_ints, default=[1])
    parser.add_argument("--design", choices=["trader", "naive"], default="trader")
    parser.add_argument("--seconds", type=float, default=240)
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep each run's data dir under this dir"
    )
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for n in args.symbols:
        for tuning in args.tuning:
            for workers in args.workers:
                rows.append(
                    await run_one(
                        design=args.design,
                        n=n,
                        tuning=tuning,
                        workers=workers,
                        seconds=args.seconds,
                        keep=args.keep,
                    )
                )
                if args.json is not None:  # after each run: a long campaign keeps what it has
                    args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    print(table(asyncio.run(main(parse_args()))))
