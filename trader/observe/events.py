"""Phase events and the process-wide sink workflows publish them to.

Workflows call ``publish`` only when not replaying, and the sink drops an event it has
already seen (same workflow run and transition number), so neither a replay, a workflow
task retried on another worker, nor continue-as-new writes an event twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal

from pydantic import BaseModel, ConfigDict


class PhaseEvent(BaseModel):
    """One accepted transition, as written to the JSONL log (one line each)."""

    model_config = ConfigDict(frozen=True)

    ts: float
    symbol: str
    exchange: str
    src: str
    dst: str
    trigger: str
    reason: str
    decision_id: str | None
    client_order_id: str | None
    order_id: str | None
    price: Decimal
    amount: Decimal
    realized_pnl_total: Decimal
    simulated: bool
    workflow_id: str
    run_id: str
    seq: int
    """Transition number within the run (dedup key with run_id)."""
    src_since: float = 0.0
    """When the symbol entered ``src`` (for time-in-phase and fill latency)."""
    fees_total: Decimal = Decimal(0)


Listener = Callable[[PhaseEvent], None]


class EventSink:
    """Fans events out to listeners (the JSONL log, the metrics), at most once each."""

    def __init__(self, *, remember: int = 100_000) -> None:
        self._listeners: list[Listener] = []
        self._seen: dict[tuple[str, int], None] = {}
        self._remember = remember
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.remove(listener)

    def publish(self, event: PhaseEvent) -> bool:
        """Deliver unless already delivered; returns whether it was delivered."""
        key = (event.run_id, event.seq)
        with self._lock:
            if key in self._seen:
                return False
            self._seen[key] = None
            if len(self._seen) > self._remember:  # bounded: forget the oldest
                del self._seen[next(iter(self._seen))]
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)
        return True


#: The worker process's sink (workflow code reaches it through a passed-through import).
SINK = EventSink()
