"""Running the legacy engine (``FSM_MODE=legacy``), reading its state and operating it: the
wiring of ``trader.legacy`` with the same exchange, hub, ledger, phase log and metrics as a
worker, and the operator's commands sent to it through ``trader.legacy.requests``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console, RenderableType

from activities.notify import Notifier, build_notifier, close_notifier
from trader.config import Settings
from trader.contracts import StatusMemo
from trader.core.errors import TraderError
from trader.exchange.port import Exchange
from trader.hub import MarketHub
from trader.ledger import LedgerStore
from trader.legacy import requests
from trader.legacy.engine import LegacyEngine
from trader.legacy.store import StateStore, read_state, state_path
from trader.observe.events import SINK
from trader.observe.metrics import TraderMetrics
from trader.observe.phase_log import PhaseLog
from trader.observe.status_table import StatusRow, build_table, sort_rows
from trader.runtime import hybrid
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


def control_command(settings: Settings, args: argparse.Namespace) -> tuple[int, str]:
    """``control`` for a parsed ``starter.py`` command (``force-exit SYMBOL [--reason]``,
    ``pause|resume|reconcile [SYMBOLS]``, ``stop [--close-positions]``, ``--wait``)."""
    return control(
        settings,
        args.command,
        [args.symbol] if args.command == "force-exit" else getattr(args, "symbols", []),
        reason=getattr(args, "reason", "") or "",
        close_positions=getattr(args, "close_positions", False),
        timeout_s=args.wait,
    )


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
    identity = f"{os.getpid()}@{socket.gethostname()}"
    try:
        with engine_listeners(settings, settings.phase_log_path(), identity) as metrics:
            if metrics is not None:
                metrics.serve(settings.prometheus_port, settings.prometheus_bind_address)
            hub = build_hub(settings, exchange)
            await run_engine(
                settings, stop, store=store, exchange=exchange, hub=hub, metrics=metrics
            )
    finally:
        store.close()
        await exchange.close()


@contextlib.contextmanager
def engine_listeners(
    settings: Settings, log_path: Path, identity: str
) -> Iterator[TraderMetrics | None]:
    """The engine's JSONL phase log and (ENABLE_PROMETHEUS) metrics, unserved, on the sink,
    taking the legacy engine's events only (in ``FSM_MODE=both`` the workflows publish to
    the same sink and have their own)."""
    phase_log = PhaseLog(log_path, buffer_size=settings.phase_log_buffer_size)
    listeners: list[hybrid.EngineOnly] = []
    metrics: TraderMetrics | None = None
    try:
        listeners.append(hybrid.EngineOnly(hybrid.LEGACY, phase_log))
        if settings.enable_prometheus:
            metrics = TraderMetrics(identity, engine="legacy")
            listeners.append(hybrid.EngineOnly(hybrid.LEGACY, metrics))
        for listener in listeners:
            SINK.subscribe(listener)
        yield metrics
    finally:
        for listener in listeners:
            SINK.unsubscribe(listener)
        if metrics is not None:
            metrics.close()
        phase_log.close()


async def run_engine(
    settings: Settings,
    stop: asyncio.Event,
    *,
    store: StateStore,
    exchange: Exchange,
    hub: MarketHub,
    metrics: TraderMetrics | None,
    notifier: Notifier | None = None,
    lineage_prefix: str = "",
    role: str = "primary",
) -> None:
    """The engine on resources its caller owns (the store, exchange, hub, sink listeners;
    ``run_legacy``, or ``FSM_MODE=both`` beside a worker): its own ledger connection and,
    unless given one, notifier. ``role``: recorded in the store (``primary`` trades the
    exchange's account, ``shadow`` a simulated one), checked by a both-mode start."""
    store.set_role(role)
    ledger = LedgerStore(settings.ledger_target)
    await ledger.open_or_warn()
    notify = notifier or build_notifier(settings)
    try:
        await validate_watchlist(exchange, settings.watchlist)
        engine = LegacyEngine(
            params=settings.trader_params(),
            watchlist=settings.watchlist,
            exchange=exchange,
            hub=hub,
            store=store,
            ledger=ledger,
            notify=notify.send,
            metrics=metrics,
            lineage_prefix=lineage_prefix,
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
        await ledger.close()
        await close_notifier(notify)


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

    async def frame() -> list[RenderableType]:
        return [build_table(legacy_rows(settings), show_idle=show_idle)]

    await repaint(console, frame, once=once, refresh_hz=settings.rich_table_refresh_hz, stop=stop)


async def repaint(
    console: Console,
    frame: Callable[[], Awaitable[list[RenderableType]]],
    *,
    once: bool,
    refresh_hz: float,
    stop: asyncio.Event,
) -> None:
    """Print ``frame``'s tables, once or every ``1 / refresh_hz`` s until ``stop``."""
    while True:
        for table in await frame():
            console.print(table)
        if once:
            return
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0 / refresh_hz)
            return
        except TimeoutError:
            console.clear()
