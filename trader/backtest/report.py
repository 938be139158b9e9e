"""The backtest's report: figures per symbol and per quote currency (totals are never
summed across quotes: 1 BTC and 1 ETH are not the same money), the trades as CSV and
JSON, and the equity curve with its drawdown as a PNG.

Every figure is an exact ``Decimal`` (the trades' own sums); only the chart converts to
float, to draw.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from trader.backtest.data import Series
from trader.backtest.sim import Trade

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

    @property
    def win_rate(self) -> Decimal:
        return Decimal(self.wins) / self.trades if self.trades else ZERO


def _drawdown(trades: Iterable[Trade]) -> Decimal:
    equity = peak = deepest = ZERO
    for t in sorted(trades, key=lambda t: (t.exit_ms, t.symbol)):
        equity += t.net
        peak = max(peak, equity)
        deepest = max(deepest, peak - equity)
    return deepest


def _figures(name: str, quote: str, trades: list[Trade], held_ms: int, span_ms: int) -> Figures:
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
    )


@dataclass(frozen=True)
class Report:
    symbols: list[Figures]
    totals: list[Figures]
    """One per quote currency."""
    trades: list[Trade]


def build_report(data: Mapping[str, Series], trades: Mapping[str, list[Trade]]) -> Report:
    rows: list[Figures] = []
    by_quote: dict[str, tuple[list[Trade], int, int]] = {}
    for symbol, series in sorted(data.items()):
        own = trades.get(symbol, [])
        span = int(series.ts[-1]) + series.step_ms - int(series.ts[0]) if len(series) else 0
        held = sum(t.exit_ms - t.entry_ms for t in own)
        quote = series.market.quote
        rows.append(_figures(symbol, quote, own, held, span))
        q_trades, q_held, q_span = by_quote.get(quote, ([], 0, 0))
        by_quote[quote] = (q_trades + own, q_held + held, q_span + span)
    totals = [
        _figures(f"total {quote}", quote, t, held, span)
        for quote, (t, held, span) in sorted(by_quote.items())
    ]
    every = sorted(
        (t for s in sorted(trades) for t in trades[s]), key=lambda t: (t.exit_ms, t.symbol)
    )
    return Report(symbols=rows, totals=totals, trades=every)


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
)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def trade_row(t: Trade) -> dict[str, str]:
    """A trade as text: exact decimals, ISO UTC times."""
    return {
        "symbol": t.symbol,
        "entry_time": _iso(t.entry_ms),
        "exit_time": _iso(t.exit_ms),
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
    }


def _figures_json(f: Figures) -> dict[str, object]:
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
        "symbols": [_figures_json(f) for f in report.symbols],
        "totals": [_figures_json(f) for f in report.totals],
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
