"""``/profit``'s figures from the ledger's trade rows: the one place to re-point when the
ledger's own report (``starter.py profit``) lands."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from trader import contracts as c
from trader.core.messages import fmt


def profit_text(trades: Iterable[c.TradeRecord], *, since_ts: float | None = None) -> str:
    """Realized PnL, fees, trade count, wins, best/worst, per symbol and in total."""
    rows = [t for t in trades if since_ts is None or t.closed_ts >= since_ts]
    if not rows:
        return "no closed trades" + ("" if since_ts is None else " in that period")
    lines = []
    by_symbol: dict[str, list[c.TradeRecord]] = {}
    for t in rows:
        by_symbol.setdefault(t.symbol, []).append(t)
    for name, group in [*sorted(by_symbol.items()), ("total", rows)]:
        nets = [t.net_pnl for t in group]
        wins = sum(1 for n in nets if n > 0)
        fees = sum((t.entry_fee + t.exit_fee for t in group), Decimal(0))
        lines.append(
            f"{name}: {len(group)} trades, {wins} won, net {fmt(sum(nets, Decimal(0)), 8)}, "
            f"fees {fmt(fees, 8)}, best {fmt(max(nets), 8)}, worst {fmt(min(nets), 8)}"
        )
    return "\n".join(lines)
