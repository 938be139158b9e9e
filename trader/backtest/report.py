"""The backtest's report: figures per symbol and per quote currency (totals are never
summed across quotes: 1 BTC and 1 ETH are not the same money), the trades as CSV and
JSON, and the equity curve with its drawdown as a PNG.

Every figure is an exact ``Decimal`` (the trades' own sums); only the chart converts to
float, to draw. Realized figures are the closed trades' only; what a symbol still holds at
the end of the data (an open position, or carried inventory) is shown beside them, marked
to the last close, as unrealized.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from pathlib import Path
from typing import Protocol

from trader.backtest.data import Series
from trader.backtest.sim import Holding, Outcome, Trade

ZERO = Decimal(0)
CHART_SIZE = (1000, 700)
"""Width and height of the equity chart in pixels."""
_DPI = 100


@dataclass(frozen=True)
class Figures:
    """One row of the report: a symbol, or the total of one quote currency."""

    name: str
    quote: str
    trades: int
    wins: int
    realized: Decimal
    fees: Decimal
    max_drawdown: Decimal
    """Deepest fall of the cumulative realized PnL from its running peak (starts at 0)."""
    exposure: Decimal
    """Fraction of the data's time a position was held (0..1)."""
    best: Decimal | None
    worst: Decimal | None
    open_cost: Decimal = ZERO
    """What is still held cost, entry fees included (not realized)."""
    open_value: Decimal = ZERO
    """Its value at the last close."""

    @property
    def unrealized(self) -> Decimal:
        return self.open_value - self.open_cost

    @property
    def win_rate(self) -> Decimal:
        return Decimal(self.wins) / self.trades if self.trades else ZERO


class Closed(Protocol):
    """What the figures need of a closed trade (a backtest's, or a ledger row)."""

    @property
    def symbol(self) -> str: ...
    @property
    def exit_ms(self) -> int: ...
    @property
    def net(self) -> Decimal: ...
    @property
    def fees(self) -> Decimal: ...


_EXIT_ORDER = attrgetter("exit_ms", "symbol")
"""Trades in exit order (a C-level sort key)."""


def _drawdown(trades: Iterable[Closed]) -> Decimal:
    equity = peak = deepest = ZERO
    for t in sorted(trades, key=_EXIT_ORDER):
        equity += t.net
        peak = max(peak, equity)
        deepest = max(deepest, peak - equity)
    return deepest


@dataclass(frozen=True)
class OpenRow:
    """What a symbol still holds at the end of the data, marked to its last close."""

    symbol: str
    quote: str
    amount: Decimal
    entry_price: Decimal
    """The open position's buy price, or the carried inventory's average cost."""
    cost: Decimal
    """Cost basis plus entry fees."""
    mark_price: Decimal
    """The last candle's close."""
    opened_ms: int | None
    """The open position's entry; None: carried inventory only."""

    @classmethod
    def of(cls, h: Holding, series: Series) -> OpenRow:
        return cls(
            symbol=h.symbol,
            quote=h.quote,
            amount=h.amount,
            entry_price=h.entry_price,
            cost=h.cost + h.entry_fee,
            mark_price=series.price(int(series.close[-1])),
            opened_ms=h.opened_ms,
        )

    @property
    def value(self) -> Decimal:
        return self.amount * self.mark_price

    @property
    def unrealized(self) -> Decimal:
        return self.value - self.cost


def figures(
    name: str,
    quote: str,
    trades: Sequence[Closed],
    held_ms: int = 0,
    span_ms: int = 0,
    held: Sequence[OpenRow] = (),
) -> Figures:
    """The figures of ``trades`` (all of one quote currency); the backtest and
    ``starter.py profit`` both use this."""
    nets = [t.net for t in trades]
    return Figures(
        name=name,
        quote=quote,
        trades=len(trades),
        wins=sum(1 for n in nets if n > 0),
        realized=sum(nets, ZERO),
        fees=sum((t.fees for t in trades), ZERO),
        max_drawdown=_drawdown(trades),
        exposure=Decimal(held_ms) / span_ms if span_ms > 0 else ZERO,
        best=max(nets) if nets else None,
        worst=min(nets) if nets else None,
        open_cost=sum((h.cost for h in held), ZERO),
        open_value=sum((h.value for h in held), ZERO),
    )


@dataclass(frozen=True)
class Report:
    symbols: list[Figures]
    totals: list[Figures]
    """One per quote currency."""
    trades: list[Trade]
    holdings: list[OpenRow]
    """What each symbol still holds at the end of its data (symbols holding nothing left out)."""


def build_report(data: Mapping[str, Series], outcome: Outcome) -> Report:
    rows: list[Figures] = []
    holdings: list[OpenRow] = []
    by_quote: dict[str, tuple[list[Trade], int, int, list[OpenRow]]] = {}
    for symbol, series in sorted(data.items()):
        own = outcome.trades.get(symbol, [])
        end = int(series.ts[-1]) + series.step_ms
        span = end - int(series.ts[0])
        held = sum(t.exit_ms - t.entry_ms for t in own)
        still = outcome.holdings.get(symbol)
        open_rows = [OpenRow.of(still, series)] if still is not None else []
        if still is not None and still.opened_ms is not None:
            held += end - still.opened_ms  # an open position is held to the end of the data
        quote = series.market.quote
        rows.append(figures(symbol, quote, own, held, span, open_rows))
        holdings += open_rows
        q_trades, q_held, q_span, q_open = by_quote.get(quote, ([], 0, 0, []))
        by_quote[quote] = (q_trades + own, q_held + held, q_span + span, q_open + open_rows)
    totals = [
        figures(f"total {quote}", quote, t, held, span, still)
        for quote, (t, held, span, still) in sorted(by_quote.items())
    ]
    every = sorted(
        (t for s in sorted(outcome.trades) for t in outcome.trades[s]),
        key=_EXIT_ORDER,
    )
    return Report(symbols=rows, totals=totals, trades=every, holdings=holdings)


# --- files ----------------------------------------------------------------------------
FIELDS = (
    "symbol",
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "amount",
    "reason",
    "entry_fee",
    "exit_fee",
    "fees",
    "gross",
    "net",
    "pct",
    "carried_amount",
    "carried_cost",
    "inventory_in_amount",
    "inventory_in_cost",
)


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def trade_row(t: Trade) -> dict[str, str]:
    """A trade as text: exact decimals, ISO UTC times."""
    return {
        "symbol": t.symbol,
        "entry_time": iso_ms(t.entry_ms),
        "exit_time": iso_ms(t.exit_ms),
        "entry_price": str(t.entry_price),
        "exit_price": str(t.exit_price),
        "amount": str(t.amount),
        "reason": t.reason.value,
        "entry_fee": str(t.entry_fee),
        "exit_fee": str(t.exit_fee),
        "fees": str(t.fees),
        "gross": str(t.gross),
        "net": str(t.net),
        "pct": str(t.pct),
        "carried_amount": str(t.carried_amount),
        "carried_cost": str(t.carried_cost),
        "inventory_in_amount": str(t.inventory_in_amount),
        "inventory_in_cost": str(t.inventory_in_cost),
    }


def open_row(h: OpenRow) -> dict[str, str | None]:
    """A holding as text: exact decimals, ISO UTC time (None: carried inventory only)."""
    return {
        "symbol": h.symbol,
        "quote": h.quote,
        "amount": str(h.amount),
        "entry_price": str(h.entry_price),
        "cost": str(h.cost),
        "mark_price": str(h.mark_price),
        "value": str(h.value),
        "unrealized_pnl": str(h.unrealized),
        "opened_time": None if h.opened_ms is None else iso_ms(h.opened_ms),
    }


def figures_json(f: Figures) -> dict[str, object]:
    return {
        "name": f.name,
        "quote": f.quote,
        "trades": f.trades,
        "wins": f.wins,
        "win_rate": str(f.win_rate),
        "realized_pnl": str(f.realized),
        "fees": str(f.fees),
        "max_drawdown": str(f.max_drawdown),
        "exposure": str(f.exposure),
        "best_trade": None if f.best is None else str(f.best),
        "worst_trade": None if f.worst is None else str(f.worst),
        "open_cost": str(f.open_cost),
        "open_value": str(f.open_value),
        "unrealized_pnl": str(f.unrealized),
    }


def write_files(report: Report, out: Path) -> list[Path]:
    """trades.csv, trades.json (the trades and the figures) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [trade_row(t) for t in report.trades]
    csv_path, json_path = out / "trades.csv", out / "trades.json"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    doc = {
        "trades": rows,
        "symbols": [figures_json(f) for f in report.symbols],
        "totals": [figures_json(f) for f in report.totals],
        "open": [open_row(h) for h in report.holdings],
    }
    json_path.write_text(json.dumps(doc, indent=1) + "\n")
    return [csv_path, json_path]


def write_chart(report: Report, path: Path) -> Path:
    """The cumulative realized PnL per quote currency over time, its drawdown below."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (top, bottom) = plt.subplots(
        2,
        1,
        sharex=True,
        figsize=(CHART_SIZE[0] / _DPI, CHART_SIZE[1] / _DPI),
        dpi=_DPI,
        gridspec_kw={"height_ratios": [3, 1]},
    )
    for quote in sorted({t.quote for t in report.trades}):
        times, equity, down = [], [], []
        level = peak = ZERO
        for t in report.trades:
            if t.quote != quote:
                continue
            level += t.net
            peak = max(peak, level)
            times.append(datetime.fromtimestamp(t.exit_ms / 1000, UTC))
            equity.append(float(level))  # drawing only
            down.append(float(level - peak))
        top.step(times, equity, where="post", label=f"realized PnL ({quote})")
        bottom.fill_between(times, down, 0, step="post", alpha=0.4, label=quote)
    top.set_title("Backtest equity (cumulative realized PnL)")
    top.set_ylabel("PnL (quote)")
    bottom.set_ylabel("drawdown")
    top.grid(alpha=0.3)
    bottom.grid(alpha=0.3)
    if report.trades:
        top.legend(loc="upper left")
    fig.autofmt_xdate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path
