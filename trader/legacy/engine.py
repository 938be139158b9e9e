"""The legacy engine: the seed's in-process ``TradingEngine``, one asyncio task per symbol.

No Temporal: the market-data hub, the ``Exchange`` port, the ledger and the phase-event sink
are the same objects the worker uses; the state lives in ``StateStore`` (SQLite). MAX_TRADES
is counted across the engine's own symbols (one process, one event loop: the count and the
transition that takes a slot run with no await between them).

At start it refuses state saved for another exchange (or live state on a simulated run, and
the reverse), and it keeps managing, exit only, a saved symbol that is no longer in the
watchlist but still holds something: a position is never forgotten, its slot counts.
Every saved symbol that holds something checks the account before trading on (as a
workflow resumed after a stop). Operator requests (``trader.legacy.requests``) are polled
every second and answered (``trader.legacy.controls``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import Protocol

from trader import contracts as c
from trader.core.errors import TraderError
from trader.core.params import TraderParams
from trader.core.phases import Phase
from trader.core.state import CoinState
from trader.exchange.port import Exchange
from trader.hub import MarketHub
from trader.ledger import LedgerStore
from trader.legacy.requests import Answer, Kind, Request, RequestQueue, requests_path
from trader.legacy.store import LedgerRow, StateStore, outbox_key
from trader.legacy.symbol import SymbolRunner
from trader.observe.events import SINK, EventSink
from trader.observe.metrics import TraderMetrics

log = logging.getLogger(__name__)

#: How often the engine looks for operator requests.
REQUEST_POLL_S = 1.0

_NOTIFY_TIMEOUT_S = 10.0

#: Longest wait between the engine's retries of ledger rows its outbox keeps.
LEDGER_RETRY_MAX_S = 60.0


class Send(Protocol):
    """A notifier's ``send`` (``activities/notify.py``'s ``Notifier``)."""

    def __call__(self, text: str, *, key: str = "") -> Awaitable[None]: ...


"""Most a notification may take (and the time given to those under way at shutdown)."""

#: A symbol in these phases with a decision holds no trade slot (not yet, or no longer).
_NO_SLOT = frozenset({Phase.WARMUP, Phase.IDLE, Phase.ENTRY_EVAL, Phase.COOLDOWN})


class ForeignState(TraderError):
    """The data dir holds state of another exchange (or of a simulated run on a live one)."""


def holdings(s: CoinState) -> str:
    """What a saved symbol holds, for the operator ("" if nothing)."""
    held = []
    if s.holds_position:
        held.append(f"position {s.remaining}")
    if s.trade.order.client_order_id and s.phase not in _NO_SLOT:
        side = s.trade.order.side.value if s.trade.order.side else "an"
        held.append(f"{side} order {s.trade.order.client_order_id} ({s.phase.value})")
    if s.has_inventory:
        held.append(f"inventory {s.inventory.amount}")
    return ", ".join(held)


def _account(exchange: str, simulated: bool | None) -> str:
    """``binance (live)``; the kind is unknown (None) for a symbol never warmed up."""
    return exchange if simulated is None else f"{exchange} ({'simulated' if simulated else 'live'})"


class LegacyEngine:
    def __init__(
        self,
        *,
        params: TraderParams,
        watchlist: list[str],
        exchange: Exchange,
        hub: MarketHub,
        store: StateStore,
        ledger: LedgerStore,
        sink: EventSink = SINK,
        notify: Send | None = None,
        requests: RequestQueue | None = None,
        metrics: TraderMetrics | None = None,
        lineage_prefix: str = "",
    ) -> None:
        """``lineage_prefix``: before each new symbol's lineage (the hex of its first start,
        ms), so its decision and trade ids never equal another engine's (``FSM_MODE=both``
        passes ``trader.runtime.hybrid.LEGACY_LINEAGE_PREFIX``)."""
        self.params, self.exchange, self.hub = params, exchange, hub
        self.store, self.ledger, self.sink = store, ledger, sink
        self._send = notify
        """The notifier's ``send`` (``activities/notify.py``, built by the runtime); None:
        notifications are logged only."""
        self.metrics = metrics
        """Counts failed ledger writes (``trader_ledger_errors_total``, as the activities)."""
        self._background: set[asyncio.Task[None]] = set()
        self._ledger_lock = asyncio.Lock()
        self.requests = requests or RequestQueue(requests_path(store.path.parent))
        self.stopping = False
        """The operator asked to stop: the engine ends once every symbol stopped."""
        saved = store.load()
        self._refuse_foreign(saved, simulated=exchange.simulated or not params.global_trading)
        for state in saved.values():
            _resumed(state)
        self.runners: dict[str, SymbolRunner] = {}
        for symbol in watchlist:
            state = saved.get(symbol) or CoinState(
                symbol=symbol,
                exchange=params.exchange,
                lineage=f"{lineage_prefix}{int(time.time() * 1000):x}",
                phase_since=time.time(),
            )
            self.runners[symbol] = SymbolRunner(self, state)
            store.save(state)  # readable at once, before the first transition
        for symbol, state in saved.items():
            held = holdings(state)
            if symbol in self.runners or not held:
                continue
            state.note = f"exit only: not in the watchlist, holds {held}; no new entries"
            log.warning("%s: %s", symbol, state.note)
            self.runners[symbol] = SymbolRunner(self, state, exit_only=True)
            store.save(state)

    def _refuse_foreign(self, saved: dict[str, CoinState], *, simulated: bool) -> None:
        """State saved by a run on another account is not this run's to trade: a paper
        position adopted on a live account would be sold from coins it never bought."""
        here = _account(self.params.exchange, simulated)
        foreign = [
            f"{s.symbol} on {_account(s.exchange, s.simulated if s.market else None)}: "
            f"{holdings(s) or 'nothing held'}"
            for s in saved.values()
            if s.exchange != self.params.exchange
            or (s.market is not None and s.simulated != simulated)
        ]
        if foreign:
            raise ForeignState(
                f"{self.store.path}: the saved state is of another account: {'; '.join(foreign)}; "
                f"this run trades on {here}. Give this run its own DATA_DIR, or settle those "
                f"symbols with the run they belong to and then move {self.store.path} aside"
            )

    def notify(self, kind: str, text: str, *, key: str = "") -> None:
        """Send a notification in the background: it never blocks or fails trading (a
        failure is logged). ``key`` de-duplicates it (the runner's, from saved state)."""
        if self._send is None:
            log.info("notify %s: %s", kind, text)
            return
        task = asyncio.get_running_loop().create_task(self._deliver(self._send, kind, text, key))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _deliver(send: Send, kind: str, text: str, key: str) -> None:
        try:
            await asyncio.wait_for(send(text, key=key), timeout=_NOTIFY_TIMEOUT_S)
        except Exception as exc:  # a notification never fails a trade
            log.warning("notification (%s) failed: %s", kind, str(exc) or type(exc).__name__)

    def write_ledger(self, records: list[LedgerRow]) -> None:
        """Have the rows just committed to the store's outbox written (in the background:
        a slow or down database never holds up a symbol)."""
        if not records:
            return
        task = asyncio.get_running_loop().create_task(self._flush_quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _flush_quietly(self) -> None:
        await self.flush_ledger()

    async def flush_ledger(self) -> bool:
        """Write every row in the store's outbox (idempotent on their ids), dropping each
        once written; True when none is left. A failure keeps it and the rest there for the
        next flush: the engine's retry (while it runs) or its next start."""
        async with self._ledger_lock:
            for row in self.store.outbox():
                trade = isinstance(row, c.TradeRecord)
                try:
                    if isinstance(row, c.TradeRecord):
                        await self.ledger.record_trade(row)
                    else:
                        await self.ledger.record_inventory(row)
                except Exception as exc:
                    log.warning("ledger write of %s failed (kept): %s", outbox_key(row), exc)
                    if self.metrics is not None:
                        call = "record_trade" if trade else "record_inventory"
                        self.metrics.ledger_error(call, type(exc).__name__)
                    return False
                self.store.written(row)
            return True

    async def _retry_ledger(self) -> None:
        """Retry what the outbox keeps (a down database) until it is written, backing off
        from 1 s to ``LEDGER_RETRY_MAX_S``; idle while the outbox is empty."""
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            if not self.store.outbox() or await self.flush_ledger():
                delay = 1.0
            else:
                delay = min(delay * 2, LEDGER_RETRY_MAX_S)

    def handle(self, req: Request) -> list[Answer]:
        """An operator's request, applied to its symbols (every symbol when it names none)."""
        if req.kind is Kind.STOP:
            self.stopping = True
        names = list(req.symbols) or list(self.runners)
        answers = []
        for symbol in names:
            runner = self.runners.get(symbol)
            if runner is None:
                answers.append(
                    Answer(
                        symbol=symbol,
                        accepted=False,
                        detail=f"not traded by this engine ({', '.join(self.runners)})",
                    )
                )
                continue
            answers.append(runner.apply(req))
            log.info(
                "%s: %s %s: %s", symbol, req.kind.value, _verdict(answers[-1]), answers[-1].detail
            )
        return answers

    async def _serve_requests(self) -> None:
        """Take the operator's requests every second; each is answered once."""
        while True:
            try:
                for req in await asyncio.to_thread(self.requests.take):
                    try:
                        answers = self.handle(req)
                    except Exception as exc:  # a bug must not leave the operator waiting
                        log.exception("request %s failed", req.id)
                        answers = [Answer(symbol="*", accepted=False, detail=f"failed: {exc}")]
                    await asyncio.to_thread(self.requests.answer, req.id, answers)
            except Exception as exc:  # e.g. the file is locked a moment: next poll
                log.warning("operator requests unreadable: %s", exc)
            await asyncio.sleep(REQUEST_POLL_S)

    def slots_in_use(self) -> int:
        return sum(
            1
            for r in self.runners.values()
            if r.s.trade.decision_id is not None and r.s.phase not in _NO_SLOT
        )

    def slots_free(self) -> int:
        return self.params.max_trades - self.slots_in_use()

    async def run(self, stop: asyncio.Event) -> None:
        """Trade every symbol until ``stop`` is set (or a symbol fails for good)."""
        await self.flush_ledger()  # what a crash (or a down database) left unwritten
        await self.hub.start()
        tasks = {asyncio.create_task(r.run(), name=f"legacy:{s}") for s, r in self.runners.items()}
        stopper = asyncio.create_task(stop.wait())
        server = asyncio.create_task(self._serve_requests())
        retry = asyncio.create_task(self._retry_ledger())
        try:
            waiting: set[asyncio.Task[object]] = {*tasks, stopper, server, retry}
            while not stopper.done():
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for task in done - {stopper}:
                    task.result()  # a symbol that failed raises here; an exit-only one ends
                if self.stopping and all(t.done() for t in tasks):
                    log.info("every symbol stopped (operator's stop)")
                    break
        finally:
            for task in (*tasks, stopper, server, retry):
                task.cancel()
            if self._background:  # notifications under way: given their time, not more
                await asyncio.wait(self._background, timeout=_NOTIFY_TIMEOUT_S)
            for task in (*tasks, stopper, server, retry):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for r in self.runners.values():
                r.save()  # the last watch state (anchor, trailing peak)
            await self.flush_ledger()
            await self.hub.stop()


def _verdict(a: Answer) -> str:
    return "accepted" if a.accepted else "refused"


def _resumed(s: CoinState) -> None:
    """A saved symbol at start: a stop asked of the last run is over; what it holds is
    checked against the account before it trades on (the account may have changed while
    nothing watched it: never trust memory)."""
    s.controls.shutdown_requested = s.controls.close_on_shutdown = False
    if s.holds_position or s.has_inventory:
        s.controls.reconcile_requested = "resumed after a stop"
