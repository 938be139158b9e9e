"""Phase events and the process-wide sink workflows publish them to.

The SymbolTrader publishes one ``PhaseEvent`` per accepted transition to ``SINK``
(imported through ``imports_passed_through`` so workflow code and the worker share this
one module), replayed transitions too, flagged as such. The sink delivers each
``(run_id, seq)`` at most once per process (neither a replay, a workflow task retried on
this worker, nor continue-as-new, a new run id with seq restarting at 1, delivers one
twice), live transitions to every listener and replayed ones only to those that asked for
them: the JSONL log (which writes what its directory lacks: the lines a SIGKILLed worker
never wrote), never the metrics (which count what this worker did).

A worker that dies after publishing but before its workflow task completed lets the next
worker make, and count, that transition again; the log does not write it again (its
directory already holds it), unless the retried task took another edge: readers keep the
newest line per ``(run_id, seq)`` (docs/debugging.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from trader.core.pnl import TradePnL
from trader.core.state import CoinState, PhaseRecord
from trader.observe.log_index import KeyIndex

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
    engine: str = "fsm"
    """``fsm`` (the workflows) or ``legacy``: in ``FSM_MODE=both`` both publish to one
    process's sink (with ``simulated`` true for the shadow's)."""


def transition_event(
    s: CoinState,
    record: PhaseRecord,
    *,
    src_since: float,
    trade: tuple[str, TradePnL] | None,
    simulated: bool,
    workflow_id: str,
    run_id: str,
    engine: str = "fsm",
) -> PhaseEvent:
    """The event of ``record``, the transition ``s`` just made (both engines publish it);
    ``trade``: the ledger id and PnL of the trade it closed, if any."""
    trade_id, pnl = trade if trade else (None, None)
    return PhaseEvent(
        ts=record.ts,
        symbol=s.symbol,
        exchange=s.exchange,
        src=record.src.value,
        dst=record.dst.value,
        trigger=record.trigger.value,
        reason=record.note,
        decision_id=record.decision_id,
        client_order_id=s.trade.order.client_order_id,
        order_id=s.trade.order.order_id,
        price=s.current_price,
        position=s.remaining,
        realized_pnl_total=s.totals.realized_pnl,
        fees_total=s.totals.fees,
        trade_id=trade_id,
        trade_pnl=pnl.net if pnl else None,
        trade_fees=pnl.fees if pnl else None,
        simulated=simulated,
        workflow_id=workflow_id,
        run_id=run_id,
        seq=s.transitions,
        src_since=src_since,
        engine=engine,
    )


Listener = Callable[[PhaseEvent], None]


class EventSink:
    """Fans events out to listeners (the JSONL log, the metrics), at most once each."""

    def __init__(self, *, remember_bytes: int = 4 << 20) -> None:
        self._listeners: list[tuple[Listener, bool]] = []  # (listener, wants replayed)
        # Delivered keys, least recently used runs forgotten first: 4 MB hold ~0.9M keys in
        # runs of 100 transitions, days of them even for hundreds of symbols, far longer
        # than a failed workflow task takes to be retried on this worker.
        self._seen = KeyIndex(max_bytes=remember_bytes)
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener, *, replayed: bool = False) -> None:
        """Deliver live transitions to ``listener``, and replayed ones too if ``replayed``
        (a listener counting what this worker did must not see them)."""
        with self._lock:
            self._listeners.append((listener, replayed))

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = [(fn, r) for fn, r in self._listeners if fn != listener]

    def publish(self, event: PhaseEvent, *, replayed: bool = False) -> bool:
        """Deliver unless already delivered; returns whether it was delivered (to any
        listener: what none wanted is not remembered).

        ``replayed``: the workflow is replaying history, the transition happened before
        (on this worker or another). Never raises: it runs inside workflow code, where an
        exception would fail the workflow task. A second event with the same key but a
        different edge (a retried task that took another path, e.g. a signal arrived
        meanwhile) is delivered: it supersedes the first, and readers keep the newest line
        per key.
        """
        edge = (event.src, event.dst, event.trigger)
        with self._lock:
            listeners = [fn for fn, wants in self._listeners if wants or not replayed]
            if not listeners or self._seen.has(event.run_id, event.seq, edge):
                return False
            self._seen.put(event.run_id, event.seq, edge)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken log or metric must never break trading
                log.exception("phase event listener %r failed", listener)
        return True


#: The worker process's sink (workflow code reaches it through a passed-through import).
SINK = EventSink()
