"""Operator commands: force-exit, pause/resume, stop, status (read from visibility)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from trader import contracts as c
from trader.config import Settings
from trader.core import ids
from trader.core.errors import ConfigError
from trader.runtime import search as sa

RUNNING_TRADERS = 'WorkflowType = "SymbolTrader" AND ExecutionStatus = "Running"'


def _handle(client: Client, settings: Settings, symbol: str):  # noqa: ANN202
    if not ids.is_valid_symbol(symbol):
        raise ConfigError(f"{symbol!r} is not a symbol of the form BASE/QUOTE (e.g. BTC/USDT)")
    return client.get_workflow_handle(ids.workflow_id_for(settings.exchange, symbol))


async def force_exit(client: Client, settings: Settings, symbol: str, reason: str) -> str:
    """Ask the symbol to sell now; returns what the workflow answered."""
    try:
        result = await _handle(client, settings, symbol).execute_update(
            "request_exit", c.ForceExitRequest(reason=reason), result_type=c.ForceExitResult)
    except WorkflowUpdateFailedError as err:
        return f"{symbol}: rejected: {err.cause}"
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        return f"{symbol}: not running"
    return f"{symbol}: accepted in {result.phase}: {result.detail}"


async def signal_all(client: Client, settings: Settings, signal: str, arg: object = None,
                     symbols: list[str] | None = None) -> list[str]:
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
    return await signal_all(client, settings, "shutdown",
                            c.ShutdownRequest(close_position=close_positions))


@dataclass(frozen=True)
class StatusRow:
    symbol: str
    phase: str
    since: datetime | None
    workflow_id: str


async def status_rows(client: Client) -> list[StatusRow]:
    """One visibility list call for all symbols (no query per symbol)."""
    rows = []
    async for wf in client.list_workflows(RUNNING_TRADERS):
        attrs = wf.typed_search_attributes
        rows.append(StatusRow(
            symbol=attrs.get(sa.TRADING_SYMBOL) or wf.id,
            phase=attrs.get(sa.TRADING_PHASE) or "?",
            since=attrs.get(sa.PHASE_SINCE), workflow_id=wf.id,
        ))
    order = {"error": 0}
    return sorted(rows, key=lambda r: (order.get(r.phase, 1), r.symbol))


def render_status(rows: list[StatusRow], console: Console) -> None:
    table = Table(title="durable-trader")
    for col in ("symbol", "phase", "in phase", "workflow id"):
        table.add_column(col)
    now = datetime.now(UTC)
    for r in rows:
        age = f"{(now - r.since).total_seconds():.0f}s" if r.since else "?"
        table.add_row(r.symbol, r.phase, age, r.workflow_id)
    console.print(table)
