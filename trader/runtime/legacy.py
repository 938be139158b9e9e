"""Running the legacy engine (``FSM_MODE=legacy``), reading its state and operating it: the
wiring of ``trader.legacy`` with the same exchange, hub, ledger, phase log and metrics as a
worker, and the operator's commands sent to it through ``trader.legacy.requests``."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import UTC, datetime

from rich.console import Console

from activities.notify import build_notifier, close_notifier
from trader.config import Settings
from trader.contracts import StatusMemo
from trader.core.errors import TraderError
from trader.ledger import LedgerStore
from trader.legacy import requests
from trader.legacy.engine import LegacyEngine
from trader.legacy.store import StateStore, read_state, state_path
from trader.observe.events import SINK
from trader.observe.metrics import TraderMetrics
from trader.observe.phase_log import PhaseLog
from trader.observe.status_table import StatusRow, build_table, sort_rows
from trader.runtime.exchange import build_exchange, build_hub
from trader.runtime.launch import validate_watchlist
from trader.runtime.stuck import STUCK_PHASES, StuckSymbol

log = logging.getLogger(__name__)

#: The operator's commands, sent to the running engine as requests.
CONTROLS = {
    "force-exit": requests.Kind.FORCE_EXIT,
    "pause": requests.Kind.PAUSE,
    "resume": requests.Kind.RESUME,
    "reconcile": requests.Kind.RECONCILE,
    "stop": requests.Kind.STOP,
}


class NoEngine(TraderError):
    """No legacy engine answered an operator's command."""


#: How long a command waits for the engine to take its request.
REQUEST_TIMEOUT_S = 15.0


def control(
    settings: Settings,
    command: str,
    symbols: list[str],
    *,
    reason: str = "",
    close_positions: bool = False,
    timeout_s: float = REQUEST_TIMEOUT_S,
) -> tuple[int, str]:
    """Send an operator command to the legacy engine of this data dir and wait for its
    answer: (exit code, text). 0: every symbol accepted it; 1: one refused it. No engine
    took it: ``NoEngine`` (the request is withdrawn: nothing is applied later)."""
    path = requests.requests_path(settings.data_dir)
    lock = state_path(settings.data_dir).with_name(f"{state_path(settings.data_dir).name}.lock")
    req = requests.submit(
        path, CONTROLS[command], symbols, reason=reason, close_positions=close_positions
    )
    alive = requests.engine_alive(lock)
    try:
        answers = requests.wait(path, req.id, timeout_s=timeout_s, alive=alive)
    except TimeoutError as exc:
        raise NoEngine(str(exc)) from None
    if answers is None:
        why = f"none took it within {timeout_s:g}s" if alive else "none is running"
        raise NoEngine(
            f"no legacy engine on {settings.data_dir} answered `{command}`: {why}; the "
            "request was withdrawn (nothing is applied). Start the engine "
            "(`python starter.py`), then repeat the command"
        )
    lines = [
        f"{a.symbol}: {'accepted' if a.accepted else 'refused'}"
        + (f" in {a.phase}" if a.phase else "")
        + f": {a.detail}"
        for a in answers
    ]
    return (0 if all(a.accepted for a in answers) else 1), "\n".join(lines)


def legacy_stuck(
    settings: Settings, *, timeout_s: float, now: float | None = None
) -> list[StuckSymbol]:
    """Symbols of the persisted state in a working phase for longer than ``timeout_s``
    (the FSM's ``stuck_symbols``, read from the state file instead of visibility), longest
    first. A row of an engine that is not running counts too: nothing drives it."""
    now = time.time() if now is None else now
    rows = [
        StuckSymbol(
            symbol=s.symbol,
            phase=s.phase.value,
            since=datetime.fromtimestamp(s.phase_since, UTC),
            workflow_id=f"legacy:{s.exchange}:{s.symbol}",
        )
        for s in read_state(state_path(settings.data_dir)).coins.values()
        if s.phase in STUCK_PHASES and now - s.phase_since > timeout_s
    ]
    return sorted(rows, key=lambda r: (r.since or datetime.min.replace(tzinfo=UTC), r.symbol))


async def run_legacy(settings: Settings, stop: asyncio.Event) -> None:
    """Trade the watchlist in this process until ``stop`` is set."""
    store = StateStore(state_path(settings.data_dir))  # first: refused if another engine runs
    try:
        exchange = build_exchange(settings)
    except BaseException:
        store.close()
        raise
    ledger = LedgerStore(settings.ledger_target)
    await ledger.open_or_warn()
    notifier = build_notifier(settings)
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
            hub=build_hub(settings, exchange),
            store=store,
            ledger=ledger,
            notify=notifier.send,
            metrics=metrics,
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
        await ledger.close()
        await exchange.close()
        await close_notifier(notifier)


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
