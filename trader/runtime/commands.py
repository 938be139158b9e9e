"""Operator commands: force-exit, pause/resume, stop, status (read from visibility)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from trader import contracts as c
from trader import search as sa
from trader.config import Settings
from trader.core import ids
from trader.core.errors import ConfigError
from trader.observe.status_live import live_status, print_once, status_console
from trader.observe.status_table import RUNNING_TRADERS, traders_query

__all__ = [
    "RUNNING_TRADERS",
    "deployment_symbols",
    "each_symbol",
    "force_exit",
    "force_exit_each",
    "signal_all",
    "status",
    "stop",
]

log = logging.getLogger("durable_trader.commands")

SYMBOL_TIMEOUT_S = 10.0
"""How long a command waits for one symbol's answer: an Update waits for a worker to run
it, and a workflow with no worker (or a failing workflow task) would never answer."""


def _handle(client: Client, settings: Settings, symbol: str) -> WorkflowHandle[Any, Any]:
    # Signals and updates go by name (the handle is untyped); each call names its result_type.
    if not ids.is_valid_symbol(symbol):
        raise ConfigError(f"{symbol!r} is not a symbol of the form BASE/QUOTE (e.g. BTC/USDT)")
    return client.get_workflow_handle(ids.workflow_id_for(settings.exchange, symbol))


async def force_exit_each(
    client: Client,
    settings: Settings,
    symbols: Sequence[str],
    reason: str,
    *,
    timeout_s: float = SYMBOL_TIMEOUT_S,
) -> list[str]:
    """``force_exit`` for every symbol at once, each bounded by ``timeout_s``."""
    return await each_symbol(
        symbols, lambda s: force_exit(client, settings, s, reason), timeout_s=timeout_s
    )


async def force_exit(client: Client, settings: Settings, symbol: str, reason: str) -> str:
    """Ask the symbol to sell now; returns what the workflow answered (an Update: it waits
    for a worker to run it; ``force_exit_each`` bounds that)."""
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
    *,
    timeout_s: float = SYMBOL_TIMEOUT_S,
) -> list[str]:
    """Signal each symbol (default: ``deployment_symbols``), all at once; returns one entry
    per symbol: the symbol, or it with why not (not running, failed, no answer)."""

    async def one(symbol: str) -> str:
        handle = _handle(client, settings, symbol)
        try:
            await (handle.signal(signal) if arg is None else handle.signal(signal, arg))
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            return f"{symbol} (not running)"
        return symbol

    targets = symbols or await deployment_symbols(client, settings)
    return await each_symbol(
        targets,
        one,
        timeout_s=timeout_s,
        failed="{symbol} ({why})",
        no_answer="the server did not take the signal",
    )


async def deployment_symbols(client: Client, settings: Settings) -> list[str]:
    """What "all" means: the watchlist and every running SymbolTrader of this deployment's
    task queue (visibility), so a symbol dropped from the watchlist that still holds (run
    exit-only) is included, and one started moments ago (visibility lags) is not missed.
    A server without visibility (the time-skipping test server): the watchlist."""
    running: list[str] = []
    try:
        async for wf in client.list_workflows(traders_query(settings.task_queue)):
            symbol = wf.typed_search_attributes.get(sa.TRADING_SYMBOL)
            if symbol:
                running.append(symbol)
    except RPCError as err:
        log.info("no visibility (%s): all = the watchlist", err.status)
    return list(dict.fromkeys([*settings.watchlist, *sorted(running)]))


async def each_symbol(
    symbols: Sequence[str],
    call: Callable[[str], Awaitable[str]],
    *,
    timeout_s: float = SYMBOL_TIMEOUT_S,
    failed: str = "{symbol}: {why}",
    no_answer: str = "the workflow may have no worker",
) -> list[str]:
    """``call`` for every symbol concurrently, each bounded by ``timeout_s``: one answer per
    symbol, in order, whatever the others did (a failure or a hang is that symbol's line)."""

    async def one(symbol: str) -> str:
        try:
            return await asyncio.wait_for(call(symbol), timeout=timeout_s)
        except TimeoutError:
            why = f"no answer in {timeout_s:g} s: {no_answer}"
        except RPCTimeoutOrCancelledError:  # the server gave up waiting first
            why = f"no answer: {no_answer}"
        except Exception as exc:  # one symbol's failure is its own line, never the others'
            why = f"failed: {exc or type(exc).__name__}"
        return failed.format(symbol=symbol, why=why)

    return list(await asyncio.gather(*(one(s) for s in symbols)))


async def stop(
    client: Client,
    settings: Settings,
    *,
    close_positions: bool,
    timeout_s: float = SYMBOL_TIMEOUT_S,
) -> list[str]:
    return await signal_all(
        client,
        settings,
        "shutdown",
        c.ShutdownRequest(close_position=close_positions),
        timeout_s=timeout_s,
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
