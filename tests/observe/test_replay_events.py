"""Replaying a committed history writes no phase event and counts no metric: the workflow
publishes only when it is not replaying."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from trader.observe.events import SINK
from trader.observe.metrics import TraderMetrics
from trader.observe.phase_log import PhaseLog
from trader.runtime.converter import DATA_CONVERTER
from workflows.portfolio import Portfolio
from workflows.symbol_trader import SymbolTrader

HISTORIES = sorted((Path(__file__).parents[1] / "histories").glob("*.json"))


def _phase_upserts(raw: dict) -> int:
    return sum(1 for e in raw["events"]
               if "TradingPhase" in e.get("upsertWorkflowSearchAttributesEventAttributes", {})
               .get("searchAttributes", {}).get("indexedFields", {}))


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_replay_writes_nothing(path, tmp_path, monkeypatch):
    raw = json.loads(path.read_text())
    # The sink's memory of delivered events is process-wide: a replay of the same history
    # earlier in the session (tests/test_replay.py) would let a missing replay guard pass
    # here unseen, its events dropped as duplicates. Start from an empty memory.
    monkeypatch.setattr(SINK, "_seen", {})
    assert _phase_upserts(raw) > 3  # the history really has transitions to (not) publish
    log = PhaseLog(tmp_path / "events.jsonl")
    metrics = TraderMetrics("replayer")
    SINK.subscribe(log)
    SINK.subscribe(metrics)
    try:
        result = await Replayer(workflows=[SymbolTrader, Portfolio],
                                data_converter=DATA_CONVERTER).replay_workflow(
            WorkflowHistory.from_json(path.stem, raw))
        assert result.replay_failure is None
    finally:
        SINK.unsubscribe(metrics)
        SINK.unsubscribe(log)
        log.close()
    assert (tmp_path / "events.jsonl").read_text() == ""
    assert metrics.registry.get_sample_value(
        "trader_transitions_total", {"src": "warmup", "dst": "idle",
                                     "trigger": "warmed_up", "worker": "replayer"}) is None
    assert b"trader_transitions_total{" not in generate_latest(metrics.registry)
