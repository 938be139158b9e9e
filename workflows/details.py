"""The workflow's "current details" shown in the Web UI: phase, position and PnL at a glance."""

from __future__ import annotations

from datetime import UTC, datetime

from trader.contracts import StatusMemo, shows_position
from trader.core.messages import fmt
from trader.core.phases import Phase
from trader.core.pnl import unrealized_pnl_pct
from trader.core.state import CoinState


def render_details(s: CoinState, *, simulated: bool) -> str:
    since = datetime.fromtimestamp(s.phase_since, UTC).strftime("%H:%M:%S UTC")
    lines = [f"**{s.symbol}** · phase `{s.phase.value}` since {since}"]
    if simulated:
        lines[0] += " · SIMULATED"
    if shows_position(s):
        pnl = unrealized_pnl_pct(s.current_price, s.trade.entry_price)
        lines.append(
            f"position {fmt(s.remaining)} @ {fmt(s.trade.entry_price)} · last "
            f"{fmt(s.current_price)} · unrealized {pnl:+.2f} %"
        )
        lines.append(
            f"TP {fmt(s.trade.tp_px)} · SL {fmt(s.trade.sl_px)} · "
            f"trailing {fmt(s.trade.exits.trailing.trigger)}"
        )
    else:
        lines.append(f"last {fmt(s.current_price)} · anchor {fmt(s.entry_watch.anchor)}")
    if s.trade.written_off > 0:
        lines.append(f"written off {fmt(s.trade.written_off)} (not on the account)")
    if s.has_inventory:
        lines.append(
            f"inventory {fmt(s.inventory.amount)} (cost "
            f"{fmt(s.inventory.cost + s.inventory.fee)}): below the market minimum, "
            "joins the next trade"
        )
    lines.append(
        f"closed trades {s.totals.trades_closed} · realized net {fmt(s.totals.realized_pnl)}"
    )
    if s.controls.entries_paused:
        lines.append("entries paused")
    if s.last_error and s.phase is Phase.ERROR:
        lines.append(f"last error: {s.last_error}")
    if s.phase_history:
        last = s.phase_history[-1]
        lines.append(
            f"last transition: {last.src.value} → {last.dst.value} "
            f"({last.trigger.value}){': ' + last.note if last.note else ''}"
        )
    if s.note and (not s.phase_history or s.note != s.phase_history[-1].note):
        lines.append(f"note: {s.note}")
    return "\n".join(lines)


def status_memo(s: CoinState, *, simulated: bool) -> StatusMemo:
    """The memo ``starter.py status`` reads (prices and PnL: never in search attributes)."""
    return StatusMemo.of(s, simulated=simulated)
