"""Replaying a committed history with the log attached writes exactly the transitions the
log directory lacks (all of them into an empty directory, the lost ones after a crash,
none when it has them all) and counts no metric: the metrics see live transitions only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from trader.observe.events import SINK, EventSink
from trader.observe.metrics import TraderMetrics
from trader.observe.phase_log import PhaseLog, read_events
from trader.runtime.converter import DATA_CONVERTER
from workflows.portfolio import Portfolio
from workflows.symbol_trader import SymbolTrader


def _workflow_type(path: Path) -> str:
    first = json.loads(path.read_text())["events"][0]
    return str(first["workflowExecutionStartedEventAttributes"]["workflowType"]["name"])


# The SymbolTrader's histories (the Portfolio's and the HybridValidator's publish no
# transitions).
HISTORIES = sorted(
    p
    for p in (Path(__file__).parents[1] / "histories").glob("*.json")
    if _workflow_type(p) == "SymbolTrader"
)


def _phase_upserts(raw: dict[str, Any]) -> int:  # a history as JSON
    return sum(
        1
        for e in raw["events"]
        if "TradingPhase"
        in e.get("upsertWorkflowSearchAttributesEventAttributes", {})
        .get("searchAttributes", {})
        .get("indexedFields", {})
    )


async def _replay_into(
    directory: Path, name: str, raw: dict[str, Any], stem: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, TraderMetrics]:
    """One worker start: a fresh process's sink memory, a new file in ``directory``."""
    monkeypatch.setattr(SINK, "_seen", EventSink()._seen)  # other tests replayed these too
    log = PhaseLog(directory / name)
    metrics = TraderMetrics("replayer")
    assert log.wait_ready(5)
    SINK.subscribe(log, replayed=True)
    SINK.subscribe(metrics)
    try:
        result = await Replayer(
            workflows=[SymbolTrader, Portfolio], data_converter=DATA_CONVERTER
        ).replay_workflow(WorkflowHistory.from_json(stem, raw))
        assert result.replay_failure is None
    finally:
        SINK.unsubscribe(metrics)
        SINK.unsubscribe(log)
        log.close()
    return log.path, metrics


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_replay_writes_what_the_log_lacks_and_counts_nothing(path, tmp_path, monkeypatch):
    raw = json.loads(path.read_text())
    transitions = _phase_upserts(raw) - 1  # the run's first upsert is WARMUP itself
    assert transitions >= 3  # the history really has transitions to publish (a stop in
    # ENTRY_EVAL, slot_wait_stopped, has three)
    run_id = raw["events"][0]["workflowExecutionStartedEventAttributes"]["originalExecutionRunId"]

    # An empty directory (the worker that made them lost them all): every line.
    full, metrics = await _replay_into(tmp_path, "a.jsonl", raw, path.stem, monkeypatch)
    events = read_events(full)
    assert [(e.run_id, e.seq) for e in events] == [(run_id, n) for n in range(1, transitions + 1)]
    assert b"trader_transitions_total{" not in generate_latest(metrics.registry)

    # A crash lost every other line: the next replay writes exactly those, once.
    full.write_text("".join(e.model_dump_json() + "\n" for e in events[::2]))
    again, metrics = await _replay_into(tmp_path, "b.jsonl", raw, path.stem, monkeypatch)
    assert read_events(again) == events[1::2]
    assert b"trader_transitions_total{" not in generate_latest(metrics.registry)

    # The directory holds them all: nothing new.
    nothing, _ = await _replay_into(tmp_path, "c.jsonl", raw, path.stem, monkeypatch)
    assert nothing.read_text() == ""
