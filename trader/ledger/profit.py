"""``starter.py profit``: realized PnL, fees, trade count, win rate, best/worst trade and
max drawdown per symbol and per quote currency, from the ledger.

The statistics are the backtest report's (``trader.backtest.report.figures``): one
implementation for both. Totals are per quote currency (USDT and BTC are not the same
money). Inventory write-offs (a loss outside any trade) are listed beside the trades.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from trader.backtest.report import Figures, figures, figures_json
from trader.contracts import InventoryRecord, TradeRecord
from trader.core.errors import ConfigError
from trader.ledger.store import LedgerStore

_AGO = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
# Figures of a ledger's closed trades only: no data span, nothing held.
_NOT_LEDGER = ("exposure", "open_cost", "open_value", "unrealized_pnl")


def parse_since(text: str, *, now: datetime | None = None) -> float:
    """``7d``, ``12h``, ``30m`` (ago) or an ISO date/time (UTC unless it says) -> epoch s."""
    ago = _AGO.match(text.strip())
    if ago:
        now = now or datetime.now(UTC)
        return (now - timedelta(**{_UNITS[ago[2]]: int(ago[1])})).timestamp()
    when = datetime.fromisoformat(text.strip())
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


@dataclass(frozen=True)
class LedgerTrade:
    """A ledger row as the report's figures read a closed trade."""

    symbol: str
    exit_ms: int
    net: Decimal
    fees: Decimal

    @classmethod
    def of(cls, t: TradeRecord) -> LedgerTrade:
        return cls(
            symbol=t.symbol,
            exit_ms=round(t.closed_ts * 1000),
            net=t.net_pnl,
            fees=t.entry_fee + t.exit_fee,
        )


@dataclass(frozen=True)
class Counted:
    """Which ledger rows a report sums: real money and simulated money (paper, dry-run, a
    ``both`` shadow) are never added together. By default (``account``) the primary
    engine's own account."""

    simulated: bool = False
    """True: the simulated rows instead of the real ones."""
    engine: str | None = None
    """Only this engine's trades (``fsm`` / ``legacy``); None: either."""
    exchange: str | None = None
    """Only this exchange's trades and write-offs (``account``: the configured one); None:
    every exchange's."""
    why: str = ""
    """Whose rows these are, said with the figures (``account``'s default)."""

    def admits(self, t: TradeRecord | InventoryRecord) -> bool:
        """A trade or a write-off of these rows (both carry ``simulated``, ``engine`` and
        ``exchange``; write-offs written before revision 0004 are engine ``unknown``)."""
        return (
            t.simulated == self.simulated
            and self.engine in (None, t.engine)
            and self.exchange in (None, t.exchange)
        )

    def describe(self, left_out: int) -> str:
        kind = "simulated trades only" if self.simulated else "real trades only"
        engine = "" if self.engine is None else f", engine {self.engine}"
        where = ", every exchange" if self.exchange is None else f", exchange {self.exchange}"
        why = f" ({self.why})" if self.why else ""
        other = "real" if self.simulated else "simulated"
        flag = "--no-simulated" if self.simulated else "--simulated"
        excluded = (
            f"; {left_out} {other}, other-engine or other-exchange row(s) left out "
            f"({flag}, --engine, --exchange)"
        )
        return f"counted: {kind}{engine}{where}{why}" + (excluded if left_out else "")

    def overridden(
        self, *, simulated: bool | None, engine: str | None, exchange: str | None = None
    ) -> Counted:
        """This default with what the command line asked for (None: not asked;
        ``"all"``: every engine's / exchange's rows)."""
        if simulated is None and engine is None and exchange is None:
            return self

        def pick(asked: str | None, default: str | None) -> str | None:
            return default if asked is None else None if asked == "all" else asked

        return Counted(
            simulated=self.simulated if simulated is None else simulated,
            engine=pick(engine, self.engine),
            exchange=pick(exchange, self.exchange),
            why="as asked",
        )


def account(*, exchange: str, global_trading: bool, both_primary: str | None) -> Counted:
    """What a report counts unless told: the primary engine's own account. On the paper
    exchange or in dry-run (``GLOBAL_TRADING=false``) all of its rows are simulated, on a
    real exchange they are the real ones. ``both_primary``: FSM_MODE=both's primary engine;
    on a simulated account its shadow's rows are simulated too, so only its own count (on
    a real one the shadow's are the simulated rows: left out already). The ledger keeps the
    engine, not its role: after a cutover (HYBRID_PRIMARY switched) the new primary's rows
    from its shadow days count as its own account (``--since`` the cutover leaves them
    out). Only ``exchange``'s rows: another exchange's are another account."""
    simulated = exchange == "paper" or not global_trading
    where = "the paper exchange" if exchange == "paper" else exchange
    where += " in dry-run" if exchange != "paper" and not global_trading else ""
    engine = both_primary if simulated else None
    whose = f"the primary {both_primary} engine's" if both_primary else "the"
    return Counted(
        simulated=simulated, engine=engine, exchange=exchange, why=f"{whose} account on {where}"
    )


@dataclass(frozen=True)
class Profit:
    symbols: list[Figures]
    totals: list[Figures]
    """One per quote currency."""
    write_offs: dict[str, Decimal]
    """Inventory written off (a realized loss outside any trade), per quote currency."""
    counted: str = "counted: every row given"
    """What the figures sum (``Counted.describe``), said with them."""


def _quote(symbol: str) -> str:
    return symbol.split("/")[1].split(":")[0] if "/" in symbol else ""


def profit(
    trades: Sequence[TradeRecord],
    inventory: Sequence[InventoryRecord] = (),
    *,
    counted: Counted | None = None,
) -> Profit:
    """The figures of ``trades`` per symbol and per quote, and ``inventory``'s write-offs;
    ``counted``: only the rows it admits (None: every row given)."""
    left_out = 0
    if counted is not None:
        kept = [t for t in trades if counted.admits(t)]
        left_out = len(trades) - len(kept)
        trades, inventory = kept, [r for r in inventory if counted.admits(r)]
    rows = [LedgerTrade.of(t) for t in trades]
    symbols = [
        figures(symbol, _quote(symbol), [r for r in rows if r.symbol == symbol])
        for symbol in sorted({r.symbol for r in rows})
    ]
    totals = [
        figures(f"total {quote}", quote, [r for r in rows if _quote(r.symbol) == quote])
        for quote in sorted({_quote(r.symbol) for r in rows})
    ]
    write_offs: dict[str, Decimal] = {}
    for rec in inventory:
        if rec.kind == "inventory_write_off":
            q = _quote(rec.symbol)
            write_offs[q] = write_offs.get(q, Decimal(0)) + rec.cost
    said = "counted: every row given" if counted is None else counted.describe(left_out)
    return Profit(symbols, totals, write_offs, said)


def _row(f: Figures) -> dict[str, object]:
    return {k: v for k, v in figures_json(f).items() if k not in _NOT_LEDGER}


def to_json(p: Profit) -> str:
    return json.dumps(
        {
            "symbols": [_row(f) for f in p.symbols],
            "totals": [_row(f) for f in p.totals],
            "inventory_written_off": {q: str(v) for q, v in p.write_offs.items()},
            "counted": p.counted,
        },
        indent=2,
    )


def to_text(p: Profit) -> str:
    if not p.symbols:
        return f"no closed trades in the ledger\n{p.counted}"
    head = f"{'':<16}{'trades':>7}{'win %':>7}{'realized':>16}{'fees':>14}"
    head += f"{'best':>14}{'worst':>14}{'max dd':>14}"
    lines = [head]
    for f in [*p.symbols, *p.totals]:
        win = f"{f.win_rate * 100:.1f}"
        best = "" if f.best is None else str(f.best)
        worst = "" if f.worst is None else str(f.worst)
        lines.append(
            f"{f.name:<16}{f.trades:>7}{win:>7}{f.realized!s:>16}{f.fees!s:>14}"
            f"{best:>14}{worst:>14}{f.max_drawdown!s:>14}"
        )
    for quote, cost in p.write_offs.items():
        lines.append(f"inventory written off ({quote}): {cost}")
    lines.append(p.counted)
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", help="only trades closed since: an ISO date/time (UTC) or 7d, 12h, 30m"
    )
    parser.add_argument("--symbol", help="only this symbol (BTC/USDT)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--simulated",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="count the simulated rows (paper, dry-run, a both-mode shadow), or with "
        "--no-simulated the real ones (default: the primary engine's own account, simulated "
        "on the paper exchange or in dry-run, real otherwise; the two are never summed)",
    )
    parser.add_argument(
        "--engine",
        choices=("fsm", "legacy", "all"),
        help="only this engine's trades and write-offs, or all engines' (default: both mode "
        "on a simulated account, the primary's, its rows from before a cutover included; "
        "else all)",
    )
    parser.add_argument(
        "--exchange",
        metavar="NAME|all",
        help="only this exchange's rows, or all exchanges' (default: the configured EXCHANGE)",
    )


def to_message(p: Profit) -> str:
    """The same figures as ``to_text``, one line each, for a chat (no table to align)."""
    lines = [
        f"{f.name}: {f.trades} trades, {f.win_rate * 100:.1f} % won, net {f.realized}, "
        f"fees {f.fees}, best {f.best}, worst {f.worst}, max drawdown {f.max_drawdown}"
        for f in [*p.symbols, *p.totals]
    ]
    lines += [f"inventory written off ({q}): {cost}" for q, cost in p.write_offs.items()]
    return "\n".join([*lines, p.counted])


async def load(
    target: str | Path,
    *,
    since: float | None = None,
    symbol: str | None = None,
    counted: Counted,
) -> Profit:
    """The ledger's figures (LEDGER_URL or <data_dir>/ledger.sqlite), closed since ``since``,
    of the rows ``counted`` admits (``account``: the primary engine's)."""
    store = LedgerStore(target)
    try:
        trades = await store.trades(since=since, symbol=symbol)
        inventory = [
            r
            for r in await store.inventory()
            if (since is None or r.ts >= since) and symbol in (None, r.symbol)
        ]
    finally:
        await store.close()
    return profit(trades, inventory, counted=counted)


async def run(args: argparse.Namespace, target: str | Path, default: Counted) -> int:
    """Print the ledger's figures (LEDGER_URL or <data_dir>/ledger.sqlite) of the rows
    ``default`` admits, or those the arguments ask for instead."""
    if (isinstance(target, Path) or "://" not in target) and not Path(target).exists():
        # A report reads: a mistyped DATA_DIR must not leave a new, empty ledger behind.
        raise ConfigError(f"no ledger at {target} (DATA_DIR or LEDGER_URL)")
    since = None if args.since is None else parse_since(args.since)
    counted = default.overridden(
        simulated=getattr(args, "simulated", None),
        engine=getattr(args, "engine", None),
        exchange=getattr(args, "exchange", None),
    )
    p = await load(target, since=since, symbol=args.symbol, counted=counted)
    print(to_json(p) if args.json else to_text(p))
    return 0
