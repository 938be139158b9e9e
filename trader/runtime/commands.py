"""Operator commands: force-exit, pause/resume, stop, status (read from visibility)."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from trader import contracts as c
from trader.config import Settings
from trader.core import ids
from trader.core.errors import ConfigError
from trader.observe.status_live import live_status, print_once, status_console
from trader.observe.status_table import RUNNING_TRADERS, traders_query

__all__ = ["RUNNING_TRADERS", "force_exit", "signal_all", "status", "stop"]


def _handle(client: Client, settings: Settings, symbol: str) -> WorkflowHandle[Any, Any]:
    # Signals and updates go by name (the handle is untyped); each call names its result_type.
    if not ids.is_valid_symbol(symbol):
        raise ConfigError(f"{symbol!r} is not a symbol of the form BASE/QUOTE (e.g. BTC/USDT)")
    return client.get_workflow_handle(ids.workflow_id_for(settings.exchange, symbol))


async def force_exit(client: Client, settings: Settings, symbol: str, reason: str) -> str:
    """Ask the symbol to sell now; returns what the workflow answered."""
    try:
        result = await _handle(client, settings, symbol).execute_update(
            "request_exit", c.ForceExitRequest(reason=reason), result_type=c.ForceExitResult
        )
    except WorkflowUpdateFailedError as err:
        return f"{symbol}: rejected: {err.cause}"
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        return f"{symbol}: not running"
    return f"{symbol}: accepted in {result.phase}: {result.detail}"


async def signal_all(
    client: Client,
    settings: Settings,
    signal: str,
    arg: object = None,
    symbols: list[str] | None = None,
) -> list[str]:
    """Signal each symbol; returns one line per symbol (sent, or why not)."""
    done = []
    for symbol in symbols or settings.watchlist:
        handle = _handle(client, settings, symbol)
        try:
            await (handle.signal(signal) if arg is None else handle.signal(signal, arg))
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            done.append(f"{symbol} (not running)")
            continue
        done.append(symbol)
    return done


async def stop(client: Client, settings: Settings, *, close_positions: bool) -> list[str]:
    return await signal_all(
        client, settings, "shutdown", c.ShutdownRequest(close_position=close_positions)
    )


async def status(
    client: Client,
    settings: Settings,
    *,
    once: bool,
    show_idle: bool,
    stop_event: asyncio.Event | None = None,
) -> None:
    """The status table of this deployment's symbols (its task queue), live or once."""
    query, console = traders_query(settings.task_queue), status_console()
    show_idle = show_idle or settings.rich_table_show_idle
    if once:
        await print_once(client, query, console=console, show_idle=show_idle)
        return
    await live_status(
        client,
        query,
        console=console,
        refresh_hz=settings.rich_table_refresh_hz,
        show_idle=show_idle,
        stop=stop_event or asyncio.Event(),
    )
