"""How soon Binance's queries show a fresh order.

Binance's order query can miss an order for a short while after it was accepted, and its
list endpoints are served from stores of their own. ``Consistency`` models both as lags in
wall-clock seconds since acceptance (never the feed's clock, which a replay may run at
300x): an order younger than ``lookup_lag_s`` is unknown to ``GET``/``DELETE
/api/v3/order``, one younger than ``list_lag_s`` (with its trades) is missing from
``openOrders``, ``allOrders`` and ``myTrades``. The matching engine itself always knows it:
a duplicate client id is refused at once. Orders accepted before this process started (a
restart) are old, so visible.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MAX_LAG_S = 600.0


def checked_lag(name: str, value: object) -> float:
    """A lag in seconds, or ValueError naming the setting."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if not 0 <= value <= MAX_LAG_S:
        raise ValueError(f"{name} must be between 0 and {MAX_LAG_S:g} s, got {value!r}")
    return float(value)


class Consistency:
    """The lags (settable at runtime) and when each order was accepted."""

    def __init__(
        self,
        *,
        lookup_lag_s: float = 0,
        list_lag_s: float = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookup_lag_s = checked_lag("lookup_lag_s", lookup_lag_s)
        self.list_lag_s = checked_lag("list_lag_s", list_lag_s)
        self._clock = clock
        self._accepted: dict[str, float] = {}  # order id -> clock() at acceptance

    def accepted(self, order_id: str) -> None:
        self._accepted[order_id] = self._clock()

    def _age(self, order_id: str) -> float:
        at = self._accepted.get(order_id)
        return float("inf") if at is None else self._clock() - at

    def seen_by_lookup(self, order_id: str) -> bool:
        return self._age(order_id) >= self.lookup_lag_s

    def seen_by_lists(self, order_id: str) -> bool:
        return self._age(order_id) >= self.list_lag_s
