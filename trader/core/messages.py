"""Notification texts, built in the pure core (the notifier only sends them)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from trader.core.pnl import TradePnL

_SIM = "[SIMULATED] "


def fmt(value: Decimal, places: int | None = None) -> str:
    """A Decimal without exponent notation (prices can be as small as 0.000053)."""
    if places is not None:
        value = value.quantize(Decimal(1).scaleb(-places))
    text = format(value, "f")
    if "." in text and places is None:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _prefix(simulated: bool) -> str:
    return _SIM if simulated else ""


def format_entry(
    *, symbol: str, amount: Decimal, price: Decimal, cost: Decimal, simulated: bool
) -> str:
    return f"{_prefix(simulated)}BUY {symbol}: {fmt(amount)} @ {fmt(price)} (cost {fmt(cost)})"


def format_exit(*, symbol: str, pnl: TradePnL, reason: str, simulated: bool) -> str:
    return (
        f"{_prefix(simulated)}SELL {symbol} ({reason}): {fmt(pnl.sold_amount)} for "
        f"{fmt(pnl.exit_proceeds)}; net PnL {fmt(pnl.net, 8)} ({fmt(pnl.pct, 2)} %), "
        f"fees {fmt(pnl.fees, 8)}"
    )


def format_in_error(*, symbol: str, error: str) -> str:
    """A symbol entering ERROR (both engines send it)."""
    return f"{symbol} in ERROR: {error}"


def format_error(*, symbol: str, phase: str, error: str) -> str:
    return f"ERROR {symbol} in {phase}: {error}"


def format_notice(*, symbol: str, text: str, simulated: bool) -> str:
    return f"{_prefix(simulated)}{symbol}: {text}"


def _since(since: datetime | None) -> str:
    return since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if since else "an unknown time"


def format_stuck_alert(*, symbol: str, phase: str, timeout_s: float, since: datetime | None) -> str:
    """A symbol in a working phase for longer than the stuck timeout. The same episode
    gives the same text (the threshold, not the age: the notifier's de-duplication key
    includes the text, so a restarted checker never sends an episode twice)."""
    return f"⚠ {symbol} stuck in {phase} for over {timeout_s:g} s (since {_since(since)})"


def format_unstuck(*, symbol: str, phase: str, since: datetime | None) -> str:
    """A symbol reported stuck has left that phase (or stopped running)."""
    return f"{symbol} no longer stuck (was in {phase} since {_since(since)})"


def format_checks_failed(*, failed: int, error: str) -> str:
    """The hybrid validator could not complete ``failed`` checks in a row: it is blind."""
    return f"⚠ hybrid validator: {failed} checks in a row failed, nothing compared: {error}"


def format_divergence(*, kind: str, detail: str, values: dict[str, str]) -> str:
    """A divergence the hybrid validator found (docs/migration.md says how to read each
    kind). The same divergence gives the same text: it is sent once per episode."""
    sides = ", ".join(f"{side}={value}" for side, value in sorted(values.items()))
    return f"⚠ divergence {kind}: {detail} [{sides}]"
