"""Running the legacy engine (``FSM_MODE=legacy``) and reading its state: the wiring of
``trader.legacy`` with the same exchange, hub, ledger, phase log and metrics as a worker."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime

from rich.console import Console

from activities.notify import build_notifier
from trader.config import Settings
from trader.contracts import StatusMemo
from trader.hub import MarketHub
from trader.ledger import LedgerStore
from trader.legacy.engine import LegacyEngine
from trader.legacy.store import StateStore, read_state, state_path
from trader.observe.events import SINK
from trader.observe.metrics import TraderMetrics
from trader.observe.phase_log import PhaseLog
from trader.observe.status_table import StatusRow, build_table, sort_rows
from trader.runtime.exchange import build_exchange
from trader.runtime.launch import validate_watchlist

log = logging.getLogger(__name__)

#: Commands that talk to Temporal workflows: the legacy engine has none to talk to.
TEMPORAL_ONLY = ("force-exit", "pause", "resume", "reconcile", "stop", "stuck")


def refusal(command: str) -> str:
    return (
        f"`{command}` needs the Temporal workflows (FSM_MODE=fsm); the legacy engine "
        "(FSM_MODE=legacy / FSM_ENABLED=false) runs in the foreground of `starter.py`: stop "
        "it with Ctrl-C, read it with `starter.py status`"
    )


async def run_legacy(settings: Settings, stop: asyncio.Event) -> None:
    """Trade the watchlist in this process until ``stop`` is set."""
    store = StateStore(state_path(settings.data_dir))  # first: refused if another engine runs
    try:
        exchange = build_exchange(settings)
    except BaseException:
        store.close()
        raise
    ledger = LedgerStore(settings.ledger_path)
    phase_log = PhaseLog(settings.phase_log_path(), buffer_size=settings.phase_log_buffer_size)
    metrics: TraderMetrics | None = None
    try:
        await validate_watchlist(exchange, settings.watchlist)
        SINK.subscribe(phase_log)
        if settings.enable_prometheus:
            metrics = TraderMetrics(f"{os.getpid()}@{socket.gethostname()}", engine="legacy")
            metrics.serve(settings.prometheus_port, settings.prometheus_bind_address)
            SINK.subscribe(metrics)
        engine = LegacyEngine(
            params=settings.trader_params(),
            watchlist=settings.watchlist,
            exchange=exchange,
            hub=MarketHub(exchange, poll_interval_s=settings.market_poll_interval_s),
            store=store,
            ledger=ledger,
            notify=build_notifier().send,
        )
        print(
            f"legacy engine: {len(settings.watchlist)} symbols on {exchange.name} "
            f"(state: {store.path})",
            flush=True,
        )
        for symbol, runner in engine.runners.items():
            if runner.exit_only:
                print(f"WARNING {symbol}: {runner.s.note}", flush=True)
        await engine.run(stop)
    finally:
        if metrics is not None:
            SINK.unsubscribe(metrics)
            metrics.close()
        SINK.unsubscribe(phase_log)
        phase_log.close()
        store.close()
        ledger.close()
        await exchange.close()


def legacy_rows(settings: Settings) -> list[StatusRow]:
    """The status table's rows from the legacy engine's persisted state."""
    snapshot = read_state(state_path(settings.data_dir))
    return sort_rows(
        StatusRow(
            symbol=s.symbol,
            phase=s.phase.value,
            since=datetime.fromtimestamp(s.phase_since, UTC) if s.phase_since else None,
            workflow_id=f"legacy:{s.exchange}:{s.symbol}",
            memo=StatusMemo.of(s, simulated=s.simulated),
        )
        for s in snapshot.coins.values()
    )


async def legacy_status(
    settings: Settings, *, console: Console, once: bool, show_idle: bool, stop: asyncio.Event
) -> None:
    show_idle = show_idle or settings.rich_table_show_idle
    while True:
        console.print(build_table(legacy_rows(settings), show_idle=show_idle))
        if once:
            return
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0 / settings.rich_table_refresh_hz)
            return
        except TimeoutError:
            console.clear()
