"""``FSM_MODE=both``: a start refused over a position of the other role (a ``HYBRID_PRIMARY``
swap while a side holds): the FSM side by its workflows' ``simulated`` marking and task
queue, the legacy side by the role its state file recorded (docs/migration.md, "Changing
roles")."""

from __future__ import annotations

import asyncio

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from trader import search as sa
from trader.config import Settings
from trader.contracts import STATUS_MEMO_KEY, StatusMemo
from trader.core import ids
from trader.core.errors import ConfigError
from trader.core.phases import Phase
from trader.core.state import CoinState
from trader.legacy.engine import holdings
from trader.legacy.store import read_role, read_state, state_path
from trader.runtime import hybrid
from trader.runtime.exchange import build_exchange
from trader.runtime.launch import resumable_state


async def fsm_simulated(settings: Settings, *, exchange_simulated: bool | None = None) -> bool:
    """Whether the FSM side trades a simulated account: its role, or a simulated exchange
    (asked of a fresh client unless the caller knows), or no global trading."""
    if hybrid.is_shadow(settings, hybrid.FSM) or not settings.global_trading:
        return True
    if exchange_simulated is None:
        exchange = build_exchange(settings)
        try:
            exchange_simulated = exchange.simulated
        finally:
            await exchange.close()
    return exchange_simulated


class RoleChanged(ConfigError):
    """A symbol's workflow holds state of the other role (simulated vs real)."""


async def refuse_other_role(client: Client, settings: Settings, *, simulated: bool) -> None:
    """Refuse to start either side over a position of the other role: ``simulated`` is
    what the FSM side is now (its role, or a simulated exchange). A running workflow (its
    status memo) or a stopped one that would be resumed holding (its result) marked
    otherwise, or on the other role's task queue (the shadow's queues are its own: on the
    paper exchange both roles are ``simulated``, so only the queue tells), and legacy rows
    holding something that the engine saved in the other role (its store's ``role``),
    would trade the other account's position on this one (docs/migration.md, "Changing
    roles").

    Raises:
        RoleChanged: naming each such workflow or legacy row and what it holds.
    """
    now = "simulated" if simulated else "live"
    base = settings.task_queue.removesuffix(hybrid.SHADOW_QUEUE_SUFFIX)
    other_queue = (
        base if hybrid.is_shadow(settings, hybrid.FSM) else base + hybrid.SHADOW_QUEUE_SUFFIX
    )
    other_role = "primary" if other_queue == base else "shadow"
    foreign = []
    for symbol in settings.watchlist:
        wf_id = ids.workflow_id_for(settings.exchange, symbol)
        handle = client.get_workflow_handle(wf_id, result_type=CoinState)
        try:
            desc = await handle.describe()
        except RPCError:
            continue  # never started: nothing to adopt
        moved = desc.task_queue == other_queue
        if desc.status == WorkflowExecutionStatus.RUNNING:
            memo = await desc.memo_value(STATUS_MEMO_KEY, None, type_hint=StatusMemo)
            phase = desc.typed_search_attributes.get(sa.TRADING_PHASE)
            if memo is None or phase in (None, Phase.WARMUP.value):
                continue  # warming up: it takes the exchange's flag then
            if memo.simulated == simulated and not moved:
                continue
            was = "simulated" if memo.simulated else "live"
            held = f"running in {phase}" + (f", entry {memo.entry}" if memo.entry else "")
        else:
            state = await resumable_state(handle)
            if state is None or state.phase is Phase.WARMUP:
                continue  # flat: a new run warms up with the new role
            if state.simulated == simulated and not moved:
                continue
            was = "simulated" if state.simulated else "live"
            held = f"stopped holding {holdings(state)}"
        where = f", the {other_role}'s queue {other_queue}" if moved else ""
        foreign.append(f"{wf_id} ({was}{where}, {held})")
    problems = []
    if foreign:
        problems.append(
            f"the FSM side is {now} now ({hybrid.label(settings, hybrid.FSM)}), but "
            f"{'; '.join(foreign)}"
        )
    path = state_path(settings.data_dir)
    role = "shadow" if hybrid.is_shadow(settings, hybrid.LEGACY) else "primary"
    saved = await asyncio.to_thread(read_role, path)
    if saved is not None and saved != role:
        rows = (await asyncio.to_thread(read_state, path)).coins.values()
        held_rows = [
            f"legacy:{s.exchange}:{s.symbol} holds {holdings(s)}" for s in rows if holdings(s)
        ]
        if held_rows:
            problems.append(
                f"the legacy side is the {role} now ({hybrid.label(settings, hybrid.LEGACY)}), "
                f"but {path} was saved as the {saved}'s: {'; '.join(held_rows)}"
            )
    if problems:
        raise RoleChanged(
            f"FSM_MODE=both: {'. And '.join(problems)}. Start the new roles on a fresh "
            "DATA_DIR and TASK_QUEUE (the old shadow's simulated account and queue stay "
            "behind), or keep the previous HYBRID_PRIMARY; `stop --close-positions` sells a "
            "position but not dust below the market minimum (docs/migration.md, Changing "
            "roles)"
        )
