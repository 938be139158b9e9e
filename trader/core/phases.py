"""The 12 phases, the triggers that move between them, and the one transition table.

The table is data, not code: ``TRANSITIONS[(phase, trigger)] -> next phase``. The workflow,
the docs' phase diagram (``python -m trader.core.diagram``) and the tests all read this one
table, so they cannot drift apart.
"""

from __future__ import annotations

from enum import Enum


class Phase(str, Enum):
    """Where a symbol is in its trading lifecycle (string values as in the seed spec)."""

    WARMUP = "warmup"
    IDLE = "idle"
    ENTRY_EVAL = "entry_eval"
    PLACE_BUY = "place_buy"
    WAIT_FILL = "wait_fill"
    POSITION = "position"
    EXIT_EVAL = "exit_eval"
    PLACE_SELL = "place_sell"
    WAIT_SELL_FILL = "wait_sell_fill"
    POST_TRADE = "post_trade"
    COOLDOWN = "cooldown"
    ERROR = "error"


class Trigger(str, Enum):
    """Why a phase changes."""

    WARMED_UP = "warmed_up"
    SIGNAL = "signal"
    GUARDS_PASSED = "guards_passed"
    GUARDS_BLOCKED = "guards_blocked"
    NO_SLOT = "no_slot"
    ORDER_PLACED = "order_placed"
    ORDER_REJECTED = "order_rejected"
    FILLED = "filled"
    PARTIAL_FILL = "partial_fill"
    PARTIAL_TIMEOUT = "partial_timeout"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    EXIT_CHECK = "exit_check"
    EXIT_TRIGGERED = "exit_triggered"
    HOLD = "hold"
    FORCE_EXIT = "force_exit"
    RECORDED = "recorded"
    EXPIRED = "expired"
    DUST_REMAINDER = "dust_remainder"
    FAILED = "failed"
    RECOVERED_FLAT = "recovered_flat"
    RECOVERED_POSITION = "recovered_position"
    RECOVERED_BUY_OPEN = "recovered_buy_open"
    RECOVERED_SELL_OPEN = "recovered_sell_open"
    RECOVERED_SOLD = "recovered_sold"
    RETRY_WARMUP = "retry_warmup"


P, T = Phase, Trigger

TRANSITIONS: dict[tuple[Phase, Trigger], Phase] = {
    (P.WARMUP, T.WARMED_UP): P.IDLE,
    (P.IDLE, T.SIGNAL): P.ENTRY_EVAL,
    (P.ENTRY_EVAL, T.GUARDS_PASSED): P.PLACE_BUY,
    (P.ENTRY_EVAL, T.GUARDS_BLOCKED): P.IDLE,
    (P.ENTRY_EVAL, T.NO_SLOT): P.IDLE,
    (P.PLACE_BUY, T.ORDER_PLACED): P.WAIT_FILL,
    # Rejected by the exchange (funds, minimums) or sized below the market minimum.
    (P.PLACE_BUY, T.ORDER_REJECTED): P.IDLE,
    (P.WAIT_FILL, T.FILLED): P.POSITION,
    # Safety change from the seed: a buy that times out partly filled keeps what filled.
    (P.WAIT_FILL, T.PARTIAL_TIMEOUT): P.POSITION,
    # Nothing filled, or only dust below the market minimum (recorded, never a stuck trade).
    (P.WAIT_FILL, T.TIMEOUT): P.IDLE,
    (P.WAIT_FILL, T.CANCELLED): P.IDLE,
    # force_exit while buying: cancel the buy and sell whatever filled.
    (P.WAIT_FILL, T.FORCE_EXIT): P.PLACE_SELL,
    (P.POSITION, T.EXIT_CHECK): P.EXIT_EVAL,
    # force_exit skips evaluation: the operator already decided.
    (P.POSITION, T.FORCE_EXIT): P.PLACE_SELL,
    (P.EXIT_EVAL, T.EXIT_TRIGGERED): P.PLACE_SELL,
    (P.EXIT_EVAL, T.HOLD): P.POSITION,
    (P.EXIT_EVAL, T.FORCE_EXIT): P.PLACE_SELL,
    (P.PLACE_SELL, T.ORDER_PLACED): P.WAIT_SELL_FILL,
    # Seed: a sell that could not be placed goes back to EXIT_EVAL, which retries it.
    (P.PLACE_SELL, T.ORDER_REJECTED): P.EXIT_EVAL,
    # What is left is below the market minimum and cannot be sold: close the trade with it
    # recorded as dust (happens after partial sells, or after recovery).
    (P.PLACE_SELL, T.DUST_REMAINDER): P.POST_TRADE,
    (P.WAIT_SELL_FILL, T.FILLED): P.POST_TRADE,
    (P.WAIT_SELL_FILL, T.PARTIAL_FILL): P.PLACE_SELL,
    (P.WAIT_SELL_FILL, T.TIMEOUT): P.PLACE_SELL,
    (P.WAIT_SELL_FILL, T.CANCELLED): P.PLACE_SELL,
    (P.POST_TRADE, T.RECORDED): P.COOLDOWN,
    (P.COOLDOWN, T.EXPIRED): P.IDLE,
    # Safety change from the seed: ERROR reconciles with the exchange instead of assuming
    # IDLE, so a position or an open order is never forgotten.
    (P.ERROR, T.RECOVERED_FLAT): P.IDLE,
    (P.ERROR, T.RECOVERED_POSITION): P.POSITION,
    (P.ERROR, T.RECOVERED_BUY_OPEN): P.WAIT_FILL,
    (P.ERROR, T.RECOVERED_SELL_OPEN): P.WAIT_SELL_FILL,
    (P.ERROR, T.RECOVERED_SOLD): P.POST_TRADE,
    # Failed before the market was known: nothing can be held yet, warm up again.
    (P.ERROR, T.RETRY_WARMUP): P.WARMUP,
    # Reconciliation itself failed: back off again.
    (P.ERROR, T.FAILED): P.ERROR,
}

#: Phases that do work (an exchange call, a booking, a watch) and so can fail into ERROR:
#: every phase but COOLDOWN (a timer only) and ERROR itself (its own edge is listed above).
WORKING_PHASES: tuple[Phase, ...] = tuple(p for p in Phase if p not in (P.COOLDOWN, P.ERROR))

# Any working phase can fail into ERROR (an exchange call exhausted its retries, or was
# rejected in a way the phase cannot handle): the edges are derived, not listed.
TRANSITIONS.update({(phase, T.FAILED): P.ERROR for phase in WORKING_PHASES})

#: Phases in which nothing is in flight: safe points for continue-as-new and shutdown.
QUIET_PHASES = frozenset({P.IDLE, P.POSITION, P.COOLDOWN})

#: Transitions that prove the order path works again: they reset the ERROR backoff
#: (``retry_count``). A watch returning, a reconciliation, a warm-up or a granted slot is no
#: such proof: a symbol whose orders keep failing after any of those must back off longer,
#: not start over at the base delay.
SUCCESS_TRIGGERS = frozenset({T.ORDER_PLACED, T.FILLED, T.PARTIAL_TIMEOUT, T.RECORDED})

#: Phases in which a position (or part of one) may be held.
HOLDING_PHASES = frozenset({P.POSITION, P.EXIT_EVAL, P.PLACE_SELL, P.WAIT_SELL_FILL})


class InvalidTransition(Exception):
    """The table has no edge for this (phase, trigger): a bug in the caller, never retried."""

    def __init__(self, phase: Phase, trigger: Trigger) -> None:
        super().__init__(f"no transition from {phase.value!r} on {trigger.value!r}")
        self.phase = phase
        self.trigger = trigger


def next_phase(phase: Phase, trigger: Trigger) -> Phase:
    """Return the phase that ``trigger`` leads to from ``phase``.

    Raises:
        InvalidTransition: the edge is not in the table.
    """
    try:
        return TRANSITIONS[(phase, trigger)]
    except KeyError:
        raise InvalidTransition(phase, trigger) from None
