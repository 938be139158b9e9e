"""``refuse_other_role`` (FSM_MODE=both, a HYBRID_PRIMARY swap) on a real time-skipping
server and real state files: what it lets start (a fresh deployment, a clean swap, a state
file from before roles) and what it refuses (a running workflow on the other role's
queue; an inventory the other role left: dust that ``stop --close-positions`` cannot
sell), with a remedy that works. The whole swap e2e: tests/e2e/test_both_shadow.py."""

from __future__ import annotations

import sqlite3
import uuid
from decimal import Decimal as D
from pathlib import Path

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from tests.test_both_run import both_settings
from trader import search as sa
from trader.config import Settings
from trader.contracts import STATUS_MEMO_KEY, StatusMemo
from trader.core import ids
from trader.core.phases import Phase
from trader.core.state import CoinState, Inventory
from trader.legacy.store import StateStore, state_path
from trader.runtime import hybrid, roles

SYMBOL = "BTC/USDT"
DUST = Inventory(amount=D("0.00001"), cost=D("0.9"))


def _settings(tmp_path: Path, primary: str) -> Settings:
    # A queue of its own: workflow ids are per exchange and symbol on a shared server.
    return both_settings(tmp_path, primary, task_queue=f"roles-{uuid.uuid4().hex[:8]}")


def _legacy_row(tmp_path: Path, role: str | None, **state: object) -> None:
    store = StateStore(state_path(tmp_path))
    try:
        store.save(CoinState(symbol=SYMBOL, exchange="paper", **state))
        if role is not None:
            store.set_role(role)
    finally:
        store.close()


async def _refused(client: Client, settings: Settings) -> str | None:
    simulated = await roles.fsm_simulated(settings, exchange_simulated=True)
    try:
        await roles.refuse_other_role(client, settings, simulated=simulated)
    except roles.RoleChanged as exc:
        return str(exc)
    return None


async def test_a_fresh_deployment_starts(ts_env, tmp_path: Path) -> None:
    assert await _refused(ts_env.client, _settings(tmp_path, "legacy")) is None


async def test_a_clean_swap_starts(ts_env, tmp_path: Path) -> None:
    """The legacy side was the shadow and ended flat: it may be the primary now."""
    _legacy_row(tmp_path, "shadow", phase=Phase.IDLE)
    assert await _refused(ts_env.client, _settings(tmp_path, "legacy")) is None


async def test_a_state_file_from_before_roles_is_not_checked(ts_env, tmp_path: Path) -> None:
    _legacy_row(tmp_path, None, phase=Phase.IDLE, inventory=DUST)
    db = sqlite3.connect(state_path(tmp_path))
    try:  # as an engine from before roles left it: no role table
        db.execute("DROP TABLE legacy_meta")
        db.commit()
    finally:
        db.close()
    assert await _refused(ts_env.client, _settings(tmp_path, "legacy")) is None


async def test_a_running_flat_workflow_on_the_other_queue_is_refused(
    ts_env, tmp_path: Path
) -> None:
    """The FSM side was the shadow, its workflow still runs (flat) on the ``-shadow``
    queue: the new primary's worker never polls that queue, so the run would sit there
    with the shadow's simulated account; the start is refused naming the queue."""
    client: Client = ts_env.client
    settings = _settings(tmp_path, "fsm")
    memo = StatusMemo.of(CoinState(symbol=SYMBOL, phase=Phase.IDLE), simulated=True)
    handle = await client.start_workflow(
        "SymbolTrader",
        id=ids.workflow_id_for(settings.exchange, SYMBOL),
        task_queue=settings.task_queue + hybrid.SHADOW_QUEUE_SUFFIX,  # no worker: it stays
        memo={STATUS_MEMO_KEY: memo},
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(sa.TRADING_PHASE, Phase.IDLE.value)]
        ),
    )
    try:
        refused = await _refused(client, settings)
    finally:
        await handle.terminate()
    assert refused is not None
    assert f"the shadow's queue {settings.task_queue}{hybrid.SHADOW_QUEUE_SUFFIX}" in refused


async def test_the_shadows_inventory_refuses_with_a_remedy_that_works(
    ts_env, tmp_path: Path
) -> None:
    """Dust below the market minimum: no sell clears it, so the remedy is a fresh
    DATA_DIR and TASK_QUEUE, not ``stop --close-positions``."""
    _legacy_row(tmp_path, "shadow", phase=Phase.IDLE, inventory=DUST)
    refused = await _refused(ts_env.client, _settings(tmp_path, "legacy"))
    assert refused is not None
    assert f"legacy:paper:{SYMBOL} holds" in refused and "saved as the shadow's" in refused
    assert "fresh DATA_DIR and TASK_QUEUE" in refused
    assert "but not dust" in refused  # it says why --close-positions is not enough


async def test_the_primarys_inventory_is_refused_the_other_way_too(ts_env, tmp_path: Path) -> None:
    """The legacy side was the primary and holds dust: it may not become the shadow."""
    _legacy_row(tmp_path, "primary", phase=Phase.IDLE, inventory=DUST)
    refused = await _refused(ts_env.client, _settings(tmp_path, "fsm"))
    assert refused is not None and "saved as the primary's" in refused
