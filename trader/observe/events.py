"""Phase events and the process-wide sink workflows publish them to.

The SymbolTrader publishes one ``PhaseEvent`` per accepted transition, only when it is not
replaying, to ``SINK`` (imported through ``imports_passed_through`` so workflow code and
the worker share this one module). The sink drops an event it has already delivered (same
``run_id`` and ``seq``), so neither a replay, a workflow task retried on this worker, nor
continue-as-new (a new run id, seq restarting at 1) delivers a transition twice.

Known gap: a worker that dies after publishing but before its workflow task completed
lets the next worker publish the same transition again. Readers dedup on
``(run_id, seq)``, keeping the last line (see docs/debugging.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)


class PhaseEvent(BaseModel):
    """One accepted transition, as written to the JSONL log (one line each)."""

    model_config = ConfigDict(frozen=True)

    ts: float
    """Workflow time of the transition, epoch seconds (equals the phase_history record's)."""
    symbol: str
    exchange: str
    src: str
    dst: str
    trigger: str
    reason: str
    """The transition's note (why), as in ``phase_history``."""
    decision_id: str | None
    client_order_id: str | None
    order_id: str | None
    price: Decimal
    """Last price the workflow knew, quote currency."""
    position: Decimal
    """Base amount held after the transition."""
    realized_pnl_total: Decimal
    """The symbol's realized net PnL so far (carried through continue-as-new)."""
    fees_total: Decimal
    trade_id: str | None = None
    """The ledger id of the trade this transition closed (POST_TRADE -> COOLDOWN only:
    ``decision_id`` is already cleared then)."""
    trade_pnl: Decimal | None = None
    """Net PnL of that trade."""
    trade_fees: Decimal | None = None
    simulated: bool
    workflow_id: str
    run_id: str
    seq: int
    """Transition number within the run, from 1 (dedup key with run_id)."""
    src_since: float
    """When the symbol entered ``src`` (time in phase, fill latency)."""


Listener = Callable[[PhaseEvent], None]


class EventSink:
    """Fans events out to listeners (the JSONL log, the metrics), at most once each."""

    def __init__(self, *, remember: int = 100_000) -> None:
        self._listeners: list[Listener] = []
        # (run_id, seq) -> (src, dst, trigger): insertion-ordered, oldest forgotten first.
        # 100k keys (~17 MB) cover hours of transitions even for hundreds of symbols: far
        # longer than a failed workflow task takes to be retried on this worker.
        self._seen: dict[tuple[str, int], tuple[str, str, str]] = {}
        self._remember = remember
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.remove(listener)

    def publish(self, event: PhaseEvent) -> bool:
        """Deliver unless already delivered; returns whether it was delivered.

        Never raises: it runs inside workflow code, where an exception would fail the
        workflow task. A second event with the same key but a different edge (a retried
        task that took another path, e.g. a signal arrived meanwhile) is delivered: it
        supersedes the first, and readers keep the last line per key.
        """
        key = (event.run_id, event.seq)
        edge = (event.src, event.dst, event.trigger)
        with self._lock:
            if self._seen.get(key) == edge:
                return False
            self._seen[key] = edge
            if len(self._seen) > self._remember:
                del self._seen[next(iter(self._seen))]
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken log or metric must never break trading
                log.exception("phase event listener %r failed", listener)
        return True


#: The worker process's sink (workflow code reaches it through a passed-through import).
SINK = EventSink()
