"""The transition table: every edge accepted, everything else rejected, state untouched."""

from __future__ import annotations

import itertools
from collections import deque

import pytest

from trader.core.phases import (
    QUIET_PHASES,
    TRANSITIONS,
    WORKING_PHASES,
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


# The table as it was written out by hand before its FAILED edges were derived (in order:
# the diagram in docs/architecture.md follows it).
P, T = Phase, Trigger
EXPLICIT_TABLE = [
    (P.WARMUP, T.WARMED_UP, P.IDLE),
    (P.IDLE, T.SIGNAL, P.ENTRY_EVAL),
    (P.ENTRY_EVAL, T.GUARDS_PASSED, P.PLACE_BUY),
    (P.ENTRY_EVAL, T.GUARDS_BLOCKED, P.IDLE),
    (P.ENTRY_EVAL, T.NO_SLOT, P.IDLE),
    (P.PLACE_BUY, T.ORDER_PLACED, P.WAIT_FILL),
    (P.PLACE_BUY, T.ORDER_REJECTED, P.IDLE),
    (P.WAIT_FILL, T.FILLED, P.POSITION),
    (P.WAIT_FILL, T.PARTIAL_TIMEOUT, P.POSITION),
    (P.WAIT_FILL, T.TIMEOUT, P.IDLE),
    (P.WAIT_FILL, T.CANCELLED, P.IDLE),
    (P.WAIT_FILL, T.FORCE_EXIT, P.PLACE_SELL),
    (P.POSITION, T.EXIT_CHECK, P.EXIT_EVAL),
    (P.POSITION, T.FORCE_EXIT, P.PLACE_SELL),
    (P.EXIT_EVAL, T.EXIT_TRIGGERED, P.PLACE_SELL),
    (P.EXIT_EVAL, T.HOLD, P.POSITION),
    (P.EXIT_EVAL, T.FORCE_EXIT, P.PLACE_SELL),
    (P.PLACE_SELL, T.ORDER_PLACED, P.WAIT_SELL_FILL),
    (P.PLACE_SELL, T.ORDER_REJECTED, P.EXIT_EVAL),
    (P.PLACE_SELL, T.DUST_REMAINDER, P.POST_TRADE),
    (P.WAIT_SELL_FILL, T.FILLED, P.POST_TRADE),
    (P.WAIT_SELL_FILL, T.PARTIAL_FILL, P.PLACE_SELL),
    (P.WAIT_SELL_FILL, T.TIMEOUT, P.PLACE_SELL),
    (P.WAIT_SELL_FILL, T.CANCELLED, P.PLACE_SELL),
    (P.POST_TRADE, T.RECORDED, P.COOLDOWN),
    (P.COOLDOWN, T.EXPIRED, P.IDLE),
    (P.ERROR, T.RECOVERED_FLAT, P.IDLE),
    (P.ERROR, T.RECOVERED_POSITION, P.POSITION),
    (P.ERROR, T.RECOVERED_BUY_OPEN, P.WAIT_FILL),
    (P.ERROR, T.RECOVERED_SELL_OPEN, P.WAIT_SELL_FILL),
    (P.ERROR, T.RECOVERED_SOLD, P.POST_TRADE),
    (P.ERROR, T.RETRY_WARMUP, P.WARMUP),
    (P.ERROR, T.FAILED, P.ERROR),
    (P.WARMUP, T.FAILED, P.ERROR),
    (P.IDLE, T.FAILED, P.ERROR),
    (P.ENTRY_EVAL, T.FAILED, P.ERROR),
    (P.PLACE_BUY, T.FAILED, P.ERROR),
    (P.WAIT_FILL, T.FAILED, P.ERROR),
    (P.POSITION, T.FAILED, P.ERROR),
    (P.EXIT_EVAL, T.FAILED, P.ERROR),
    (P.PLACE_SELL, T.FAILED, P.ERROR),
    (P.WAIT_SELL_FILL, T.FAILED, P.ERROR),
    (P.POST_TRADE, T.FAILED, P.ERROR),
]


def test_derived_failed_edges_give_exactly_the_table_written_out_by_hand():
    assert [(src, trigger, dst) for (src, trigger), dst in TRANSITIONS.items()] == EXPLICIT_TABLE


def test_every_working_phase_fails_into_error_and_only_those():
    failing = {src for (src, trigger) in TRANSITIONS if trigger is Trigger.FAILED}
    assert failing == set(WORKING_PHASES) | {Phase.ERROR}
    assert set(Phase) - failing == {Phase.COOLDOWN}
    assert all(TRANSITIONS[(p, Trigger.FAILED)] is Phase.ERROR for p in failing)
