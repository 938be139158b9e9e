"""State and messages of the release before the grouping (flat ``CoinState``, flat watch
fields, positional heartbeats) are still read: running workflows and committed histories
hold them. The fixture is a real final state recorded by that release (a symbol with one
closed trade, stopped while holding a second position with its trailing stop armed)."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from tests.fixtures import previous_watch as prev
from tests.fixtures.previous_state import CoinState as PreviousCoinState
from tests.workflows.harness import bench
from trader import contracts as c
from trader import search as sa
from trader.core import ids
from trader.core.market import Ticker
from trader.core.params import TraderParams
from trader.core.phases import Phase
from trader.core.rules import (
    EntryRecheck,
    EntryWatchState,
    ExitReason,
    ExitRulesState,
    TrailingState,
)
from trader.core.state import DROPPED_FIELDS, FLAT_FIELDS, CoinState

FIXTURE = Path(__file__).parents[1] / "fixtures" / "flat_state_position.json"
FLAT = json.loads(FIXTURE.read_text())


def _at(tree: dict[str, Any], path: tuple[str, ...]) -> Any:  # JSON: untyped
    for part in path:
        tree = tree[part]
    return tree


def test_every_field_of_the_flat_shape_lands_in_its_group_unchanged():
    state = CoinState.model_validate(FLAT)
    grouped = json.loads(state.model_dump_json())
    assert state.phase is Phase.POSITION and state.trade.exits.trailing.trigger > 0
    for key, path in FLAT_FIELDS.items():
        old = FLAT[key] if FLAT[key] != "" or key not in ("exit_reason", "signal") else None
        assert _at(grouped, path) == old, key
    # Nothing of the old shape is lost: each key is a field still, moved, or never used.
    top = set(CoinState.model_fields)
    assert set(FLAT) - top - set(FLAT_FIELDS) - set(DROPPED_FIELDS) == set()
    assert CoinState.model_validate_json(state.model_dump_json()) == state


async def test_a_run_resumed_from_a_flat_state_trades_on_where_it_stopped(ts_env, tmp_path):
    """The flat state is sent as it is (raw JSON, not through today's model): the worker
    reads it, resumes the position with its armed trailing stop, and the trailing stop then
    closes it; the totals carried from before are added to, not restarted."""
    async with bench(ts_env.client, tmp_path) as b:
        amount, trigger = D(FLAT["amount"]), D(FLAT["trailing_trigger"])
        b.exchange.set_balance("BTC", amount)
        b.set_price("BTC/USDT", FLAT["current_price"])
        raw = c.TraderInput(
            symbol="BTC/USDT",
            # No max hold: the fixture's entry time is on the clock of the server that
            # recorded it, which a time-skipping server of a long session has long passed.
            params=b.params(max_hold_minutes=D(0)),
            portfolio_id=b.portfolio_id,
            watch_task_queue=b.watch_queue,
        ).model_dump(mode="json")
        raw["state"] = {**FLAT, "shutdown_requested": False}
        h = await b.client.start_workflow(
            "SymbolTrader",
            raw,
            id=f"{ids.workflow_id_for('paper', 'BTC/USDT')}:{uuid.uuid4().hex[:8]}",
            task_queue=b.task_queue,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(sa.TRADING_SYMBOL, "BTC/USDT")]
            ),
        )
        b.handles.append(h)
        s = await b.wait_for(h, lambda s: "reconcile (resumed" in s.note, what="the resume")
        assert s.phase is Phase.POSITION and s.trade.amount == amount
        assert s.trade.exits.trailing.trigger == trigger and s.totals.trades_closed == 1
        b.set_price("BTC/USDT", str(trigger - D("0.05")))  # under the trailing stop only
        s = await b.wait_for(h, lambda s: s.totals.trades_closed == 2, what="the exit")
        [trade] = await b.ledger.trades()
        assert trade.exit_reason == ExitReason.TRAILING_STOP and trade.bought_amount == amount
        assert s.totals.realized_pnl == D(FLAT["realized_pnl_total"]) + trade.net_pnl


def test_the_previous_release_reads_what_this_one_writes():
    """Expand, then contract: the groups are also written flat, so a worker of the
    previous release (rolling deploy, rollback) keeps the position instead of ignoring
    the groups it does not know."""
    state = CoinState.model_validate(FLAT)
    state.trade.sold_amount = D("0.5")  # something the fixture does not already hold
    old = PreviousCoinState.model_validate_json(state.model_dump_json())
    assert json.loads(old.model_dump_json()) == {
        **FLAT,
        "sold_amount": "0.5",
        "sl_order_id": None,
        "tp_order_id": None,
    }
    # And back: what the previous release writes is read here, the groups it lost rebuilt.
    assert CoinState.model_validate_json(old.model_dump_json()) == state


TICKER = Ticker(symbol="BTC/USDT", ts_ms=1, bid=D("97.8"), ask=D("97.9"), last=D("97.85"))
ENTRY_STATE = EntryWatchState(anchor=D("100"), window=[(1, D("100"))], recheck=EntryRecheck.GUARDS)
EXIT_STATE = ExitRulesState(trailing=TrailingState(peak=D("102"), trigger=D("101.49")))
ENTRY_FLAT = {"anchor": D("100"), "window": [(1, D("100"))], "recheck": "guards"}
EXIT_FLAT = {"peak": D("102"), "trailing_trigger": D("101.49")}
P = TraderParams()


@pytest.mark.parametrize(
    ("new", "previous", "flat"),
    [
        (
            c.WatchEntryInput(symbol="BTC/USDT", params=P, state=ENTRY_STATE),
            prev.WatchEntryInput,
            ENTRY_FLAT,
        ),
        (
            c.WatchEntryResult(
                fired=True, ticker=TICKER, state=ENTRY_STATE, trigger_price=D(98), drop_pct=D(2)
            ),
            prev.WatchEntryResult,
            ENTRY_FLAT,
        ),
        (
            c.WatchExitInput(
                symbol="BTC/USDT", params=P, entry_price=D(100), entry_ts=1.0, state=EXIT_STATE
            ),
            prev.WatchExitInput,
            EXIT_FLAT,
        ),
        (
            c.WatchExitResult(
                fired=True,
                reason=ExitReason.TRAILING_STOP,
                detail="x",
                ticker=TICKER,
                state=EXIT_STATE,
            ),
            prev.WatchExitResult,
            {**EXIT_FLAT, "reason": "trailing_stop"},
        ),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, c._Msg) else "",
)
def test_the_previous_release_reads_the_watch_messages_this_one_writes(new, previous, flat):
    """Rolling deploy: a worker of the previous release runs a watch this release
    scheduled, or (rollback) replays a result this release recorded."""
    old = previous.model_validate_json(new.model_dump_json())
    assert {k: getattr(old, k) for k in flat} == flat
    # And back: what it writes is read here into the same state.
    assert type(new).model_validate_json(old.model_dump_json()).state == new.state


def test_parameters_the_previous_release_does_not_know_are_written_only_when_set():
    assert set(json.loads(P.model_dump_json())) == set(prev.PREVIOUS_PARAM_FIELDS)
    used = P.model_copy(update={"quote_budgets": {"BTC": D("0.002")}})
    assert TraderParams.model_validate_json(used.model_dump_json()) == used


async def test_a_position_written_off_whole_in_error_closes_with_an_unset_reason(ts_env, tmp_path):
    """ERROR finds none of the position on the account (written off whole) before any exit
    was decided: the books close with the reason unset, which reads "" in the note, as
    before the reasons were enums (not "None"), and "unknown" in the ledger."""
    async with bench(ts_env.client, tmp_path) as b:
        b.exchange.set_balance("BTC", D(0))
        b.set_price("BTC/USDT", FLAT["current_price"])
        state = CoinState.model_validate({**FLAT, "shutdown_requested": False})
        state.phase, state.last_error = Phase.ERROR, "simulated"
        h = await b.start(state=state, fsm_backoff_base_seconds=1)
        s = await b.wait_for(h, lambda s: s.totals.trades_closed == 2, what="the books closed")
        recorded = [r for r in s.phase_history if r.trigger.value == "recorded"][-1]
        assert recorded.note.startswith(": net -"), recorded.note
        [trade] = await b.ledger.trades()  # the bench's ledger knows only this run's trade
        assert trade.exit_reason == "unknown" and trade.net_pnl < 0
