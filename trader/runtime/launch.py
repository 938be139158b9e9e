"""Launching the watchlist: one SymbolTrader per symbol plus the Portfolio, idempotently."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError

from trader import contracts as c
from trader import search as sa
from trader.config import Settings
from trader.core import ids
from trader.core.errors import BadSymbol, ConfigError
from trader.core.params import TraderParams
from trader.core.phases import Phase
from trader.core.state import CoinState
from trader.exchange.port import Exchange

log = logging.getLogger(__name__)


async def validate_watchlist(exchange: Exchange, symbols: list[str]) -> None:
    """Refuse to start with a symbol the exchange does not list (before anything runs)."""
    markets = await exchange.load_markets()
    unknown = [s for s in symbols if s not in markets]
    if unknown:
        known = ", ".join(sorted(markets)[:20])
        raise BadSymbol(
            f"unknown symbol(s) {', '.join(unknown)} on {exchange.name}; available: {known}"
        )


async def resumable_state(
    handle: WorkflowHandle[Any, CoinState], *, keep_anchor: bool = False
) -> CoinState | None:
    """The final state of a symbol's last run when it stopped holding something.

    ``handle`` must carry ``result_type=CoinState`` (``WorkflowHandle.result`` takes none).

    A symbol shut down without closing its position ends with that position in its
    result; the next start hands it back so the position is never forgotten. The same for
    inventory (coins below the market minimum, carried with their cost) and, with
    ``keep_anchor`` (USE_DROP_ANCHOR), for a flat symbol: its drop anchor carries over.
    The resumed run checks the account before trading on.
    """
    try:
        desc = await handle.describe()
    except RPCError:
        return None
    if desc.status != WorkflowExecutionStatus.COMPLETED:
        return None
    state = await handle.result()
    if state.phase is Phase.IDLE and not (
        state.holds_position or state.has_inventory or keep_anchor
    ):
        return None
    resumed = state.model_copy(deep=True)
    resumed.controls.shutdown_requested = resumed.controls.close_on_shutdown = False
    if state.phase is Phase.IDLE:
        # Flat (inventory at most): warm up again for fresh market data, with a fresh
        # anchor unless USE_DROP_ANCHOR keeps it. A new run starts in WARMUP anyway.
        resumed.phase = Phase.WARMUP
        if not keep_anchor:
            resumed.entry_watch.anchor, resumed.entry_watch.window = Decimal(0), []
    return resumed


def static_details(symbol: str, p: TraderParams) -> str:
    """The parameters a symbol was started with, for the Web UI (markdown; no secrets:
    TraderParams holds none). Set once at start; the current state is in the details."""
    trailing = (
        f"trailing {p.trailing_activation_pct}% / {p.trailing_distance_pct}%"
        if p.trailing_enabled
        else "no trailing stop"
    )
    ladder = ", ".join(str(b) for b in p.sell_ladder_bps)
    return "\n".join(
        [
            f"**{symbol}** on {p.exchange}" + ("" if p.global_trading else " · SIMULATED orders"),
            f"entry: {p.drop_trigger_pct}% drop from the {p.anchor_mode.value} anchor, "
            f"{p.budget_for(symbol.partition('/')[2])} {symbol.partition('/')[2]} per trade, "
            f"{p.buy_order_mode.value.upper()} buy "
            f"+{p.buy_limit_offset_bps} bps, at most {p.max_trades} trades at once",
            f"exit: TP {p.take_profit_pct}% · SL {p.stop_loss_pct}% · {trailing} · "
            f"max hold {p.max_hold_minutes} min · IOC sell ladder {ladder} bps, then market",
            f'cooldown {p.cooldown_minutes} min · list filter `TradingSymbol = "{symbol}"`',
        ]
    )


async def start_watchlist(client: Client, settings: Settings) -> list[str]:
    """Start (or find running) one workflow per symbol; returns the workflow ids."""
    if settings.effective_mode == "legacy":
        raise ConfigError(
            "FSM_MODE=legacy runs no workflows (set FSM_ENABLED=true and FSM_MODE=fsm or both)"
        )
    params = settings.trader_params()
    portfolio_id = ids.portfolio_id_for(settings.exchange, settings.task_queue)
    portfolio = await client.start_workflow(
        "Portfolio",
        c.PortfolioInput(max_trades=params.max_trades),
        id=portfolio_id,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Trade slots on {settings.exchange}",
    )
    await portfolio.signal("set_max_trades", params.max_trades)
    # Started concurrently, a bounded number at a time: each symbol costs two or three
    # round trips (describe its last run, maybe read its result, start or find it), and
    # one after another they made a large watchlist slow to launch.
    gate = asyncio.Semaphore(settings.launch_concurrency)

    async def launch(symbol: str) -> str:
        async with gate:
            return await _launch_symbol(client, settings, params, portfolio_id, symbol)

    try:
        async with asyncio.TaskGroup() as group:  # a failure stops the launch, as before
            tasks = [group.create_task(launch(symbol)) for symbol in settings.watchlist]
    except BaseExceptionGroup as failed:  # the caller handles one error, as before
        raise failed.exceptions[0] from None
    return [t.result() for t in tasks]


async def _launch_symbol(
    client: Client, settings: Settings, params: TraderParams, portfolio_id: str, symbol: str
) -> str:
    """Start (or find running) the symbol's workflow, resuming its last run's state."""
    wf_id = ids.workflow_id_for(settings.exchange, symbol)
    state = await resumable_state(
        client.get_workflow_handle(wf_id, result_type=CoinState),
        keep_anchor=params.use_drop_anchor,
    )
    await client.start_workflow(
        "SymbolTrader",
        c.TraderInput(
            symbol=symbol,
            params=params,
            portfolio_id=portfolio_id,
            watch_task_queue=settings.watch_task_queue,
            state=state,
        ),
        id=wf_id,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.TRADING_SYMBOL, symbol),
                SearchAttributePair(sa.TRADING_EXCHANGE, settings.exchange),
                SearchAttributePair(
                    sa.TRADING_PHASE, (state.phase if state else Phase.WARMUP).value
                ),
                SearchAttributePair(sa.PHASE_SINCE, datetime.now(UTC)),
            ]
        ),
        static_summary=f"{symbol} on {settings.exchange}: drop {params.drop_trigger_pct}% "
        f"buy, TP {params.take_profit_pct}% / SL {params.stop_loss_pct}%",
        static_details=static_details(symbol, params),
    )
    if state is not None:
        log.info("%s resumed from its last run in %s", symbol, state.phase.value)
    return wf_id
