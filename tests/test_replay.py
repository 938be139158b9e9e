"""Committed histories of real lifecycles replay cleanly against today's workflow code,
and a change that alters the workflow's commands is caught (unless behind a patch)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from trader.runtime.converter import DATA_CONVERTER
from workflows.entry_phases import EntryPhases
from workflows.portfolio import Portfolio
from workflows.symbol_trader import SymbolTrader

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def _replayer() -> Replayer:
    return Replayer(workflows=[SymbolTrader, Portfolio], data_converter=DATA_CONVERTER)


def test_histories_are_committed():
    names = {p.stem for p in HISTORIES}
    assert {"lifecycle_take_profit", "partial_sell_ladder", "error_recovery"} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_committed_history_replays(path):
    result = await _replayer().replay_workflow(_history(path))
    assert result.replay_failure is None


async def test_inserted_timer_is_caught_as_nondeterminism(monkeypatch):
    original = EntryPhases._warmup

    async def warmup_with_extra_timer(self):
        await workflow.sleep(1)  # a new command before the warm-up activity
        await original(self)

    monkeypatch.setattr(EntryPhases, "_warmup", warmup_with_extra_timer)
    with pytest.raises(NondeterminismError):
        await _replayer().replay_workflow(_history(HISTORIES[0]))


async def test_same_change_behind_patched_replays_cleanly(monkeypatch):
    original = EntryPhases._warmup

    async def warmup_patched(self):
        if workflow.patched("warmup-settle-timer"):
            await workflow.sleep(1)
        await original(self)

    monkeypatch.setattr(EntryPhases, "_warmup", warmup_patched)
    result = await _replayer().replay_workflow(_history(HISTORIES[0]))
    assert result.replay_failure is None
