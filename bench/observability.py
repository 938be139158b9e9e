"""What observability costs per transition, measured with the real parts:

1. micro: one PhaseEvent built and published through the sink to nothing, to the JSONL log
   (until written: the workflow thread waits for it), and to the log plus the Prometheus
   metrics (mean per event, in-process, no Temporal; the log's other costs:
   bench/phase_log.py);
2. history: the committed take-profit lifecycle run again on the time-skipping server with
   and without the log and metrics attached: event counts (they vary run to run with
   timing: watch checkpoints), upserts (one per transition + 1) and markers, next to the
   committed history recorded before phase events existed. The exact proof that no
   command was added is that the committed histories replay (tests/test_replay.py);
3. lifecycle: wall time of complete trades (10 transitions each) on a local dev server with
   and without the log and metrics attached, alternating rounds.

    python -m bench.observability [--events 20000] [--trades 10] [--rounds 2]
                                  [--history-runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal as D
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from bench.common import REPEATED_TRADES, dev_server
from tests.histories.record import take_profit_trade
from tests.workflows.harness import bench
from trader import contracts as c
from trader.core.phases import Phase
from trader.observe.events import SINK, EventSink, PhaseEvent
from trader.observe.metrics import TraderMetrics
from trader.observe.phase_log import PhaseLog
from trader.runtime.client import ensure_search_attributes
from trader.runtime.converter import DATA_CONVERTER

BIN = Path(sys.executable).parent
COMMITTED = Path(__file__).parents[1] / "tests" / "histories" / "lifecycle_take_profit.json"


def _event(seq: int) -> PhaseEvent:
    return PhaseEvent(
        ts=1.7e9 + seq,
        symbol="BTC/USDT",
        exchange="paper",
        src="wait_fill",
        dst="position",
        trigger="filled",
        reason="bought 0.0102 @ 97.91",
        decision_id="d1",
        client_order_id="c1",
        order_id="o1",
        price=D("97.91"),
        position=D("0.0102"),
        realized_pnl_total=D("1.2345"),
        fees_total=D("0.1"),
        simulated=True,
        workflow_id="trader:paper:BTC-USDT",
        run_id="r1",
        seq=seq,
        src_since=1.7e9,
    )


def micro(n: int, tmp: Path) -> dict[str, float]:
    out = {}
    t0 = time.perf_counter()
    for i in range(n):
        _event(i)
    build = (time.perf_counter() - t0) / n
    out["build_event_us"] = round(build * 1e6, 2)
    for name, with_log, with_metrics in (
        ("sink_no_listener", False, False),
        ("sink_log", True, False),
        ("sink_log_metrics", True, True),
    ):
        sink, log = EventSink(), PhaseLog(tmp / name / "events.jsonl")  # a directory each
        assert log.wait_ready(5)
        if with_log:
            sink.subscribe(log, replayed=True)
        if with_metrics:
            sink.subscribe(TraderMetrics("bench"))
        t0 = time.perf_counter()
        for i in range(n):
            sink.publish(_event(i))
        out[f"{name}_us"] = round(((time.perf_counter() - t0) / n) * 1e6, 2)
        log.close()
    return out


@contextmanager
def attached(on: bool, tmp: Path) -> Iterator[None]:
    if not on:
        yield
        return
    log, metrics = PhaseLog(tmp / f"events-{time.monotonic_ns()}.jsonl"), TraderMetrics("bench")
    SINK.subscribe(log, replayed=True)
    SINK.subscribe(metrics)
    try:
        yield
    finally:
        SINK.unsubscribe(metrics)
        SINK.unsubscribe(log)
        log.close()


def _types(history: WorkflowHistory) -> list[str]:
    return [EventType.Name(e.event_type) for e in history.events]


_UPSERT = "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"
_MARKER = "EVENT_TYPE_MARKER_RECORDED"


async def history_cost(tmp: Path, repeats: int) -> dict[str, object]:
    """The record script's take-profit lifecycle (tests/histories/record.py), twice, each
    on a fresh time-skipping server (a leftover activity would stall ``env.sleep``)."""
    runs: dict[bool, list[Counter[str]]] = {False: [], True: []}
    for i, on in enumerate([False, True] * repeats):
        (tmp / str(i)).mkdir()
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(BIN / "temporal-test-server"),
            data_converter=DATA_CONVERTER,
        )
        await ensure_search_attributes(env.client)
        try:
            with attached(on, tmp):
                async with bench(env.client, tmp / str(i)) as b:
                    h = await take_profit_trade(env, b)  # the committed history's scenario
                    await h.signal("shutdown", c.ShutdownRequest(close_position=True))
                    await h.result()
                    runs[on].append(Counter(_types(await h.fetch_history())))
        finally:
            await env.shutdown()
    committed = Counter(_types(WorkflowHistory.from_json("c", COMMITTED.read_text())))

    def summary(counts: list[Counter[str]]) -> dict[str, object]:
        totals = sorted(sum(c.values()) for c in counts)
        return {
            "events_min_max": [totals[0], totals[-1]],
            "upserts": sorted({c[_UPSERT] for c in counts}),
            "markers": sorted({c[_MARKER] for c in counts}),
            "event_types": len(set().union(*counts)),
        }

    return {
        "without": summary(runs[False]),
        "with": summary(runs[True]),
        "committed_before_feature": summary([committed]),
        "runs_per_mode": repeats,
    }


async def trades_wall_time(env: WorkflowEnvironment, tmp: Path, trades: int) -> float:
    """Seconds per complete trade (drop -> ... -> COOLDOWN -> IDLE, 11 transitions)."""
    async with bench(env.client, tmp, poll_interval_s=0.02) as b:
        h = await b.start(**REPEATED_TRADES)
        await b.wait_phase(h, Phase.IDLE)
        price, t0 = D(100), time.perf_counter()
        for n in range(1, trades + 1):
            price = price * D("0.97")
            b.set_price("BTC/USDT", str(price.quantize(D("0.01"))))
            await b.wait_phase(h, Phase.POSITION)
            price = price * D("1.02")
            b.set_price("BTC/USDT", str(price.quantize(D("0.01"))))
            await b.wait_idle_after(h, n, timeout=30)
        return (time.perf_counter() - t0) / trades


async def lifecycle_cost(tmp: Path, trades: int, rounds: int) -> dict[str, float]:
    samples: dict[bool, list[float]] = {False: [], True: []}
    async with dev_server() as env:
        for r in range(rounds):
            for on in (False, True):
                d = tmp / f"life-{r}-{on}"
                d.mkdir()
                with attached(on, tmp):
                    samples[on].append(await trades_wall_time(env, d, trades))
    off, on_ = statistics.mean(samples[False]), statistics.mean(samples[True])
    return {
        "trade_wall_s_without": round(off, 4),
        "trade_wall_s_with": round(on_, 4),
        "per_transition_delta_ms": round((on_ - off) / 11 * 1000, 3),
        "trades_per_mode": trades * rounds,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--trades", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--history-runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        result: dict[str, object] = {"micro": micro(args.events, tmp)}
        (tmp / "h").mkdir()
        result["history"] = await history_cost(tmp / "h", args.history_runs)
        result["lifecycle"] = await lifecycle_cost(tmp, args.trades, args.rounds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
