"""Operator controls both engines honour the same way: when a force exit can be taken."""

from __future__ import annotations

from trader.core.phases import HOLDING_PHASES, Phase
from trader.core.rules import ExitReason
from trader.core.state import CoinState

#: Phases in which a force exit is honoured. PLACE_BUY: the buy may already be at the
#: exchange, so it is not abandoned blind: its placement completes, then whatever filled is
#: sold at once (WAIT_FILL's force-exit path cancels any rest); nothing filled ends the
#: entry. ERROR too while something is held or an order is in flight (``in_error``): the
#: backoff is cut short, the symbol reconciles, then sells at once.
FORCE_EXIT_PHASES = frozenset({Phase.PLACE_BUY, Phase.WAIT_FILL, Phase.POSITION, Phase.EXIT_EVAL})


def force_exit_refusal(s: CoinState, *, in_error: bool = True) -> str | None:
    """Why a force exit cannot be taken now (None: it can). ``in_error``: ERROR while
    holding honours it (the workflows since the exchange-reality patch, the legacy engine)."""
    if s.phase in FORCE_EXIT_PHASES:
        return None
    if (
        in_error
        and s.phase is Phase.ERROR
        and (s.holds_position or (s.trade.order.side is not None and s.trade.order.client_order_id))
    ):
        return None
    if s.phase in HOLDING_PHASES:
        return "already selling"
    if s.has_inventory:
        return (
            f"no position: only {s.inventory.amount} held as inventory, below the "
            "market minimum (it joins the next trade)"
        )
    return "no position"


def exit_requested(s: CoinState) -> bool:
    """The operator wants the position sold now: a force exit, or a stop that closes
    positions."""
    return s.trade.force_exit_reason is not None or (
        s.controls.shutdown_requested and s.controls.close_on_shutdown
    )


def forced_exit(s: CoinState) -> tuple[ExitReason, str]:
    """The exit reason of an operator's exit and the transition's note."""
    reason = s.trade.force_exit_reason
    return (
        ExitReason.FORCE_EXIT if reason else ExitReason.SHUTDOWN,
        f"force exit: {reason or 'shutdown'}",
    )
