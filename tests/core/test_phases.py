"""The transition table: every edge accepted, everything else rejected, state untouched."""

from __future__ import annotations

import itertools
from collections import deque

import pytest

from trader.core.phases import (
    QUIET_PHASES,
    TRANSITIONS,
    InvalidTransition,
    Phase,
    Trigger,
    next_phase,
)
from trader.core.state import CoinState

NOT_IN_TABLE = [pair for pair in itertools.product(Phase, Trigger) if pair not in TRANSITIONS]


@pytest.mark.parametrize(("edge", "dst"), TRANSITIONS.items(), ids=lambda v: str(v))
def test_every_edge_in_the_table_is_accepted(edge, dst):
    src, trigger = edge
    state = CoinState(symbol="BTC/USDT", phase=src)
    record = state.apply_transition(trigger, now=5.0, note="n")
    assert next_phase(src, trigger) is dst
    assert state.phase is dst and state.phase_since == 5.0 and state.transitions == 1
    assert record.src is src and record.dst is dst and state.phase_history == [record]


@pytest.mark.parametrize(("src", "trigger"), NOT_IN_TABLE, ids=str)
def test_every_other_edge_is_rejected_and_leaves_state_untouched(src, trigger):
    state = CoinState(symbol="BTC/USDT", phase=src, phase_since=1.0, note="before")
    before = state.model_dump()
    with pytest.raises(InvalidTransition):
        state.apply_transition(trigger, now=9.0, note="after")
    assert state.model_dump() == before


def test_phase_values_are_the_seed_strings():
    assert [p.value for p in Phase] == [
        "warmup",
        "idle",
        "entry_eval",
        "place_buy",
        "wait_fill",
        "position",
        "exit_eval",
        "place_sell",
        "wait_sell_fill",
        "post_trade",
        "cooldown",
        "error",
    ]


def test_history_is_bounded():
    state = CoinState(symbol="BTC/USDT", phase=Phase.POSITION)
    for i in range(40):
        state.apply_transition(Trigger.EXIT_CHECK, now=float(i), history_limit=7)
        state.apply_transition(Trigger.HOLD, now=float(i), history_limit=7)
    assert len(state.phase_history) == 7
    assert state.phase_history[-1].ts == 39.0 and state.transitions == 80


def _reachable(start: Phase) -> set[Phase]:
    seen, todo = {start}, deque([start])
    while todo:
        src = todo.popleft()
        for (s, _), dst in TRANSITIONS.items():
            if s is src and dst not in seen:
                seen.add(dst)
                todo.append(dst)
    return seen


def test_every_phase_is_reachable_and_every_phase_can_get_back_to_idle():
    assert _reachable(Phase.WARMUP) == set(Phase)
    for phase in Phase:
        assert Phase.IDLE in _reachable(phase) or phase is Phase.IDLE, phase


def test_error_recovers_to_every_phase_a_symbol_can_be_in_with_exposure():
    targets = {dst for (src, _), dst in TRANSITIONS.items() if src is Phase.ERROR}
    assert {Phase.IDLE, Phase.POSITION, Phase.WAIT_FILL, Phase.WAIT_SELL_FILL} <= targets


def test_quiet_phases_wait_on_nothing_in_flight():
    assert {Phase.IDLE, Phase.POSITION, Phase.COOLDOWN} == QUIET_PHASES


def test_generated_diagram_in_docs_matches_the_table():
    from pathlib import Path

    from trader.core.diagram import mermaid

    doc = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    assert mermaid() in doc, "regenerate the diagram: python -m trader.core.diagram"
