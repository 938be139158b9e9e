"""When an order attempt may create, and what the exchange's answers prove (pure).

An exchange's order query can miss a fresh order for seconds (Binance), and Binance takes a
client id again once its order is final. So after a create whose answer was lost, "the
lookup found nothing" proves nothing until the *consistency window* has passed since the
last moment an earlier attempt may have sent its create. That moment is bounded because
every attempt refuses to send a create later than ``SEND_MARGIN_S`` before its own
start-to-close ends: an earlier attempt either failed (before the server scheduled this
one) or was timed out (Temporal scheduled this one after its start-to-close, even if it
runs on as a zombie). Either way its last send lies before this attempt's scheduled time,
which is where the window starts.

Times are measured on one clock each: the server's for the gap between an attempt's
schedule and its start (``activity.info()``), the worker's monotonic clock for the rest, so
worker/server clock skew cannot stretch or shrink the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from trader.core.market import Order, OrderSide

SEND_MARGIN_S = 0.5
"""No create is sent later than this before the attempt's start-to-close ends: room for the
difference between the server's start and the worker's, and for the request in transit."""
MIN_CREATE_ROOM_S = 1.0
"""What an attempt needs after the window closes to still send its create."""
SINCE_SLACK_S = 30.0
"""The lists are read from this long before the first attempt was scheduled (clock skew
between worker and exchange; the lists of one symbol are short)."""


def window_problem(window_s: float, attempt_timeout_s: float) -> str | None:
    """Why a window of ``window_s`` cannot work with attempts of ``attempt_timeout_s``, or
    None: an attempt must be able to outlast the window and still create."""
    if window_s <= 0:
        return f"the order consistency window must be positive, got {window_s:g} s"
    if window_s + MIN_CREATE_ROOM_S > attempt_timeout_s:
        return (
            f"an order attempt of {attempt_timeout_s:g} s cannot outlast a "
            f"{window_s:g} s consistency window and still create (needs "
            f"{MIN_CREATE_ROOM_S:g} s more)"
        )
    return None


@dataclass(frozen=True)
class AttemptTimes:
    """One attempt's instants, on the worker's monotonic clock (plus one wall time)."""

    window_start: float
    """The latest an earlier attempt may have sent a create: this attempt's schedule."""
    window_end: float
    deadline: float
    """After this, this attempt sends no create (Temporal may have timed it out)."""
    end: float
    """The attempt gives up here, a little before Temporal's start-to-close: what it waits
    for until ``deadline`` can still conclude (and be logged) before then."""
    since_ms: int
    """Wall-clock ms from which the exchange's lists may hold an order of this activity."""


def attempt_times(
    *,
    now: float,
    now_wall: float,
    queued_s: float,
    since_first_s: float,
    timeout_s: float | None,
    window_s: float,
) -> AttemptTimes:
    """``queued_s``: this attempt's start minus its schedule, ``since_first_s``: its start
    minus the first attempt's schedule (both on the server's clock); ``timeout_s``: its
    start-to-close (None: no deadline)."""
    start = now - max(0.0, queued_s)
    deadline = now + timeout_s - SEND_MARGIN_S if timeout_s is not None else float("inf")
    since = now_wall - max(0.0, since_first_s) - SINCE_SLACK_S
    return AttemptTimes(
        window_start=start,
        window_end=start + window_s,
        deadline=deadline,
        end=deadline + SEND_MARGIN_S / 2,
        since_ms=int(since * 1000),
    )


class Seen(str, Enum):
    """What one look at the exchange says about our client id."""

    FOUND = "found"
    ABSENT = "absent"
    UNATTRIBUTED = "unattributed"
    """A trade on our side whose order cannot be told yet: it may be ours."""


def seen_in_lists(
    client_order_id: str, side: OrderSide, orders: list[Order]
) -> tuple[Seen, Order | None]:
    """Our order among listed ones (open and recent orders), the newest if several."""
    ours = [o for o in orders if o.client_order_id == client_order_id]
    if ours:
        return Seen.FOUND, ours[-1]
    if any(not o.client_order_id and o.side is side for o in orders):
        return Seen.UNATTRIBUTED, None
    return Seen.ABSENT, None
