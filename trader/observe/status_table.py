"""The status table: one row per symbol, read from Temporal visibility.

One ``list_workflows`` call returns every symbol's search attributes (phase, symbol,
PhaseSince) and memo (price, entry, PnL, trailing trigger, last reason: see
``trader.contracts.StatusMemo``), so a refresh costs one visibility request however many
symbols run, and never a query (which would wake each workflow on a worker). A held
symbol's price, PnL and trailing level come fresher from its running exit watch: one
``describe()`` per POSITION row reads the watch's last heartbeat (``WatchLive``), which the
workflow's memo only gets at a decision or a checkpoint (10 minutes by default).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from rich.table import Table
from rich.text import Text
from temporalio.client import Client

from trader import contracts as c
from trader import search as sa
from trader.contracts import STATUS_MEMO_KEY, StatusMemo, WatchLive
from trader.core.messages import fmt
from trader.core.phases import HOLDING_PHASES, Phase
from trader.core.pnl import unrealized_pnl_pct
from trader.observe.watch_live import watch_live

log = logging.getLogger(__name__)

RUNNING_TRADERS = 'WorkflowType = "SymbolTrader" AND ExecutionStatus = "Running"'

#: Shown only with --show-idle / RICH_TABLE_SHOW_IDLE: usually most of the watchlist.
QUIET_BY_DEFAULT = frozenset({Phase.IDLE.value, Phase.WARMUP.value})

#: Colour of the phase cell: what needs a look stands out.
PHASE_STYLES: dict[str, str] = {
    Phase.ERROR.value: "bold red",
    Phase.ENTRY_EVAL.value: "yellow",
    Phase.PLACE_BUY.value: "yellow",
    Phase.WAIT_FILL.value: "yellow",
    Phase.EXIT_EVAL.value: "yellow",
    Phase.PLACE_SELL.value: "yellow",
    Phase.WAIT_SELL_FILL.value: "yellow",
    Phase.POSITION.value: "bold green",
    Phase.POST_TRADE.value: "cyan",
    Phase.COOLDOWN.value: "dim",
    Phase.WARMUP.value: "blue",
    Phase.IDLE.value: "",
}

_HOLDING = frozenset(p.value for p in HOLDING_PHASES)


def traders_query(task_queue: str | None = None) -> str:
    """The visibility query for running symbols (of one deployment's task queue)."""
    return RUNNING_TRADERS + (f' AND TaskQueue = "{task_queue}"' if task_queue else "")


@dataclass(frozen=True)
class StatusRow:
    symbol: str
    phase: str
    since: datetime | None
    workflow_id: str
    memo: StatusMemo | None
    """None for a workflow that has not published one yet (or predates the memo)."""
    waiting: str | None = None
    """Why its watch judges nothing now (a price too old), if it waits
    (``status_waits.with_price_waits``)."""

    @property
    def rank(self) -> int:
        """Errors first, then open trades, then the rest."""
        return 0 if self.phase == Phase.ERROR.value else 1 if self.phase in _HOLDING else 2


async def status_rows(
    client: Client, query: str = RUNNING_TRADERS, *, live: bool = True
) -> list[StatusRow]:
    """Every running symbol, sorted for display; one visibility list call, plus (``live``)
    one ``describe()`` per POSITION row for its watch's live price."""
    rows = []
    async for wf in client.list_workflows(query):
        attrs = wf.typed_search_attributes
        memo = await wf.memo_value(STATUS_MEMO_KEY, None, type_hint=StatusMemo)
        rows.append(
            StatusRow(
                symbol=attrs.get(sa.TRADING_SYMBOL) or wf.id,
                phase=attrs.get(sa.TRADING_PHASE) or "?",
                since=attrs.get(sa.PHASE_SINCE),
                workflow_id=wf.id,
                memo=memo,
            )
        )
    if live:
        rows = await with_live(client, rows)
    return sort_rows(rows)


LIVE_DESCRIBES = 16
"""At most this many ``describe()`` calls at once per refresh (one per held symbol)."""
_LIVE_TTL_S = c.LIVE_HEARTBEAT.total_seconds()
"""A watch's heartbeat reaches the server at most this often: describing it sooner (the
table refreshes at 2 Hz, on every worker) would read the same details."""
_seen: dict[tuple[str, str], tuple[float, c.WatchLive | None]] = {}
"""(namespace, workflow id) -> (when read, monotonic; what was read)."""


async def with_live(client: Client, rows: list[StatusRow]) -> list[StatusRow]:
    """``rows`` with their exit watches' live values (see ``_with_live``): at most
    LIVE_DESCRIBES describes at once, each symbol's read again only after _LIVE_TTL_S."""
    now = time.monotonic()
    for key in [k for k, (at, _) in _seen.items() if now - at >= _LIVE_TTL_S]:
        del _seen[key]  # also the symbols gone meanwhile
    gate = asyncio.Semaphore(LIVE_DESCRIBES)
    return list(await asyncio.gather(*(_with_live(client, r, gate) for r in rows)))


async def _with_live(client: Client, row: StatusRow, gate: asyncio.Semaphore) -> StatusRow:
    """``row`` with its exit watch's live price, PnL and trailing level (POSITION only: the
    other phases have no exit watch running); the memo's values when it has none."""
    if row.phase != Phase.POSITION.value or row.memo is None:
        return row
    key = (client.namespace, row.workflow_id)
    if key in _seen:
        seen = _seen[key][1]
    else:
        async with gate:
            try:
                seen = await watch_live(client, row.workflow_id)
            except Exception:  # an undecodable heartbeat (another release's?): one row
                log.warning("no live price for %s", row.workflow_id, exc_info=True)
                seen = None
        _seen[key] = (time.monotonic(), seen)
    return row if seen is None else replace(row, memo=live_memo(row.memo, seen))


def live_memo(memo: StatusMemo, seen: WatchLive) -> StatusMemo:
    """The memo of a held symbol updated with what its exit watch last saw."""
    return memo.model_copy(
        update={
            "price": seen.price,
            "pnl_pct": unrealized_pnl_pct(seen.price, memo.entry),
            "trailing": seen.trailing,
        }
    )


def sort_rows(rows: Iterable[StatusRow]) -> list[StatusRow]:
    return sorted(rows, key=lambda r: (r.rank, r.symbol, r.workflow_id))


def build_table(
    rows: list[StatusRow],
    *,
    now: datetime | None = None,
    show_idle: bool = False,
    title: str = "durable-trader",
) -> Table:
    """The table for one frame; IDLE/WARMUP rows are counted in the footer unless shown."""
    now = now or datetime.now(UTC)
    shown = [r for r in rows if show_idle or r.phase not in QUIET_BY_DEFAULT]
    hidden = len(rows) - len(shown)
    footer = f"{len(rows)} symbols · {now:%H:%M:%S} UTC"
    if hidden:
        footer += f" · {hidden} idle/warmup hidden (--show-idle)"
    table = Table(title=title, caption=footer, caption_justify="left")
    table.add_column("symbol", no_wrap=True)
    table.add_column("phase", no_wrap=True)
    table.add_column("in phase", justify="right", no_wrap=True)
    for name in ("last", "entry", "PnL %", "trailing"):
        table.add_column(name, justify="right", no_wrap=True)
    # The note is the one column that gives way on a narrow terminal: the only wrappable
    # one, so Rich narrows it first (its cells stay one line, cut with an ellipsis). Were
    # every column no_wrap, Rich would take the same width from each: at 80 columns the
    # phase read "posit…" and the prices "…" while the note kept 50 columns.
    table.add_column("note", no_wrap=False, max_width=60)
    for r in shown:
        m = r.memo or StatusMemo()
        table.add_row(
            r.symbol + (" (sim)" if m.simulated else ""),
            Text(r.phase, style=PHASE_STYLES.get(r.phase, "magenta")),
            _age(now, r.since),
            _price(m.price),
            _price(m.entry),
            _pnl(m.pnl_pct),
            _price(m.trailing),
            _note(Text(r.waiting, style="bold yellow") if r.waiting else Text(m.note)),
        )
    return table


def format_pnl_pct(value: Decimal) -> str:
    """How a PnL percentage is displayed (two decimals, signed)."""
    return f"{value:+.2f}"


def _pnl(value: Decimal | None) -> Text:
    if value is None:
        return Text("-", style="dim")
    return Text(format_pnl_pct(value), style="green" if value >= 0 else "red")


def _note(text: Text) -> Text:
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


def _price(value: Decimal) -> str:
    # Display only: money stays Decimal everywhere else.
    return fmt(value) if value else "-"


def _age(now: datetime, since: datetime | None) -> str:
    if since is None:
        return "?"
    seconds = max(int((now - since).total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
