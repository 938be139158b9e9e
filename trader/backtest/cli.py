"""``python starter.py backtest``: load, run the fast path, print and write the report.

No Temporal server, no worker, no exchange: the data's clock is the only clock.
"""

from __future__ import annotations

import argparse
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from trader.backtest.data import load_path
from trader.config import Settings

if TYPE_CHECKING:  # imported when run: they import numba (~0.2 s), for this command only
    from trader.backtest.report import Figures, Report
    from trader.backtest.sim import SimConfig

LONG_RUN = 500_000
"""Candles from which a progress bar is shown."""
_SHOWN = Decimal("1e-8")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="an OHLCV CSV, trades .json.gz or dir")
    p.add_argument("--symbols", nargs="*", help="only these symbols (default: every file's)")
    p.add_argument("--out", type=Path, help="output folder (default: <data_dir>/backtest)")
    p.add_argument(
        "--reference",
        action="store_true",
        help="evaluate every candle with the exact rules (slow; the fast path's definition)",
    )


def sim_config(settings: Settings) -> SimConfig:
    """The trading parameters and the paper exchange's book and fee, from the settings."""
    from trader.backtest.sim import SimConfig

    return SimConfig(
        params=settings.trader_params(),
        spread_bps=settings.paper.spread_bps,
        fee_rate=settings.paper.fee_rate,
        level_liquidity_quote=settings.paper.level_liquidity_quote,
    )


def _money(value: Decimal | None) -> str:
    # Shown rounded to 1e-8 (the files keep the exact value).
    return "-" if value is None else f"{value.quantize(_SHOWN, ROUND_HALF_EVEN):f}"


def _pct(value: Decimal) -> str:
    return f"{(value * 100).quantize(Decimal('0.1'), ROUND_HALF_EVEN):f}%"


def table(report: Report) -> Table:
    t = Table(title="Backtest")
    for name in ("symbol", "trades", "win rate", "realized PnL", "fees", "max drawdown"):
        t.add_column(name, justify="left" if name == "symbol" else "right")
    for name in ("exposure", "best", "worst", "open cost", "unrealized"):
        t.add_column(name, justify="right")

    def row(f: Figures, style: str | None = None) -> None:
        t.add_row(
            f.name,
            str(f.trades),
            _pct(f.win_rate),
            f"{_money(f.realized)} {f.quote}",
            _money(f.fees),
            _money(f.max_drawdown),
            _pct(f.exposure),
            _money(f.best),
            _money(f.worst),
            _money(f.open_cost),
            _money(f.unrealized),
            style=style,
        )

    for f in report.symbols:
        row(f)
    for f in report.totals:
        row(f, "bold")
    return t


def open_table(report: Report) -> Table:
    """What is still held at the end of the data (not in the realized figures)."""
    from trader.backtest.report import iso_ms

    t = Table(title="Still held at the end of the data (marked to the last close)")
    for name in ("symbol", "amount", "entry", "cost", "last close", "value", "unrealized"):
        t.add_column(name, justify="left" if name == "symbol" else "right")
    t.add_column("since")
    for h in report.holdings:
        t.add_row(
            h.symbol,
            f"{h.amount:f}",
            f"{h.entry_price:f}",
            f"{_money(h.cost)} {h.quote}",
            f"{h.mark_price:f}",
            _money(h.value),
            _money(h.unrealized),
            "inventory" if h.opened_ms is None else iso_ms(h.opened_ms),
        )
    return t


def run(args: argparse.Namespace, settings: Settings) -> int:
    from trader.backtest.parallel import run_parallel
    from trader.backtest.reference import run_reference
    from trader.backtest.report import build_report, write_chart, write_files

    console = Console()
    if not console.is_terminal:  # a pipe or a file: the whole table, unwrapped
        console = Console(width=160)
    data = load_path(args.data, symbols=args.symbols or None)
    cfg = sim_config(settings)
    total = sum(len(s) for s in data.values())
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=total < LONG_RUN,
    ) as bar:
        task = bar.add_task("backtest (candles)", total=total)
        advance = lambda n: bar.advance(task, n)  # noqa: E731
        if args.reference:
            outcome = run_reference(data, cfg, progress=advance)
        else:
            outcome = run_parallel(data, cfg, progress=advance)
    report = build_report(data, outcome)
    console.print(table(report))
    if report.holdings:
        console.print(open_table(report))
    out = args.out or settings.data_dir / "backtest"
    written = [*write_files(report, out), write_chart(report, out / "equity.png")]
    console.print("written: " + ", ".join(str(p) for p in written))
    return 0
