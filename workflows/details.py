"""The workflow's "current details" shown in the Web UI: phase, position and PnL at a glance."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from trader.core.phases import HOLDING_PHASES
from trader.core.state import CoinState


def _fmt(value: Decimal) -> str:
    text = format(value.normalize(), "f") if value else "0"
    return text


def render_details(s: CoinState, *, simulated: bool) -> str:
    since = datetime.fromtimestamp(s.phase_since, UTC).strftime("%H:%M:%S UTC")
    lines = [f"**{s.symbol}** · phase `{s.phase.value}` since {since}"]
    if simulated:
        lines[0] += " · SIMULATED"
    if s.phase in HOLDING_PHASES and s.amount > 0:
        pnl = (s.current_price / s.entry_price - 1) * 100 if s.entry_price else Decimal(0)
        lines.append(
            f"position {_fmt(s.remaining)} @ {_fmt(s.entry_price)} · last "
            f"{_fmt(s.current_price)} · unrealized {pnl:+.2f} %"
        )
        lines.append(
            f"TP {_fmt(s.tp_px)} · SL {_fmt(s.sl_px)} · trailing {_fmt(s.trailing_trigger)}")
    else:
        lines.append(f"last {_fmt(s.current_price)} · anchor {_fmt(s.anchor_price)}")
    lines.append(f"closed trades {s.trades_closed} · realized net {_fmt(s.realized_pnl_total)}")
    if s.entries_paused:
        lines.append("entries paused")
    if s.note:
        lines.append(f"note: {s.note}")
    return "\n".join(lines)
