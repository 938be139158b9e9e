"""Stuck symbols: in a working phase for longer than a timeout, read from visibility.

The seed's ``get_stuck_states(timeout_seconds=60)``, but across every worker: one list
query on the ``TradingPhase`` and ``PhaseSince`` search attributes, which every transition
upserts. IDLE, POSITION and COOLDOWN (the quiet phases) can last hours by design and are
never stuck; every other phase either ends within its own timeout (WAIT_FILL, WAIT_SELL_FILL,
ERROR's backoff) or within seconds, so a symbol sitting there means no worker is running it,
an exchange call is retrying without end, or a bug (docs/debugging.md).
Visibility is eventually consistent: a transition shows up here after about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.client import Client

from trader import search as sa
from trader.core.phases import QUIET_PHASES, Phase
from trader.observe.metrics import TraderMetrics
from trader.observe.status_table import traders_query

log = logging.getLogger(__name__)

#: Phases in which a symbol should not stay for long.
STUCK_PHASES = tuple(p for p in Phase if p not in QUIET_PHASES)


@dataclass(frozen=True)
class StuckSymbol:
    symbol: str
    phase: str
    since: datetime | None
    workflow_id: str


def stuck_query(*, timeout_s: float, task_queue: str, now: datetime | None = None) -> str:
    """The visibility query: running SymbolTraders of this task queue in a working phase
    whose PhaseSince is older than ``timeout_s``."""
    if timeout_s < 0:
        raise ValueError(f"stuck timeout must be >= 0 seconds, got {timeout_s}")
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=timeout_s)
    phases = ", ".join(f'"{p.value}"' for p in STUCK_PHASES)
    return (
        f"{traders_query(task_queue)} AND {sa.TRADING_PHASE.name} IN ({phases}) "
        f'AND {sa.PHASE_SINCE.name} < "{cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}"'
    )


async def stuck_symbols(client: Client, *, timeout_s: float, task_queue: str) -> list[StuckSymbol]:
    """Symbols stuck for longer than ``timeout_s``, longest first (one list call)."""
    rows = []
    async for wf in client.list_workflows(stuck_query(timeout_s=timeout_s, task_queue=task_queue)):
        attrs = wf.typed_search_attributes
        rows.append(
            StuckSymbol(
                symbol=attrs.get(sa.TRADING_SYMBOL) or wf.id,
                phase=attrs.get(sa.TRADING_PHASE) or "?",
                since=attrs.get(sa.PHASE_SINCE),
                workflow_id=wf.id,
            )
        )
    return sorted(rows, key=lambda r: (r.since or datetime.min.replace(tzinfo=UTC), r.symbol))


def format_stuck(rows: list[StuckSymbol], *, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    lines = []
    for r in rows:
        age = f"{(now - r.since).total_seconds():.0f}s" if r.since else "?"
        lines.append(f"{r.symbol:<12} {r.phase:<15} for {age:>7}  {r.workflow_id}")
    return "\n".join(lines)


async def phase_counts(client: Client, *, task_queue: str) -> dict[str, int]:
    """Running symbols per phase, from visibility (every phase present, 0 when empty)."""
    counts = dict.fromkeys((p.value for p in Phase), 0)
    async for wf in client.list_workflows(traders_query(task_queue)):
        phase = wf.typed_search_attributes.get(sa.TRADING_PHASE)
        if phase in counts:
            counts[phase] += 1
    return counts


async def report_stuck(
    client: Client,
    metrics: TraderMetrics,
    *,
    timeout_s: float,
    interval_s: float,
    task_queue: str,
    stop: asyncio.Event,
) -> None:
    """Keep ``trader_stuck_symbols`` and ``trader_symbols`` current until ``stop``.

    Both are cluster-wide numbers read from visibility, the same on every worker (aggregate
    with max) and right from a worker's start, unlike the event-fed ``trader_phase``, which
    knows a symbol only once this worker made one of its transitions.
    """
    while not stop.is_set():
        try:
            rows = await stuck_symbols(client, timeout_s=timeout_s, task_queue=task_queue)
            metrics.set_stuck(len(rows))
            metrics.set_phase_counts(await phase_counts(client, task_queue=task_queue))
        except Exception as exc:  # visibility down: keep the last value, try again
            log.warning("stuck check failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
