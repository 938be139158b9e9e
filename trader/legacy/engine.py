"""The legacy engine: the seed's in-process ``TradingEngine``, one asyncio task per symbol.

No Temporal: the market-data hub, the ``Exchange`` port, the ledger and the phase-event sink
are the same objects the worker uses; the state lives in ``StateStore`` (SQLite). MAX_TRADES
is counted across the engine's own symbols (one process, one event loop: the count and the
transition that takes a slot run with no await between them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from trader.core.params import TraderParams
from trader.core.phases import Phase
from trader.core.state import CoinState
from trader.exchange.port import Exchange
from trader.hub import MarketHub
from trader.ledger import LedgerStore
from trader.legacy.store import StateStore
from trader.legacy.symbol import SymbolRunner
from trader.observe.events import SINK, EventSink

log = logging.getLogger(__name__)

#: A symbol in these phases with a decision holds no trade slot (not yet, or no longer).
_NO_SLOT = frozenset({Phase.WARMUP, Phase.IDLE, Phase.ENTRY_EVAL, Phase.COOLDOWN})


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
    ) -> None:
        self.params, self.exchange, self.hub = params, exchange, hub
        self.store, self.ledger, self.sink = store, ledger, sink
        saved = store.load()
        self.runners: dict[str, SymbolRunner] = {}
        for symbol in watchlist:
            state = saved.get(symbol) or CoinState(
                symbol=symbol,
                exchange=params.exchange,
                lineage=f"{int(time.time() * 1000):x}",
                phase_since=time.time(),
            )
            self.runners[symbol] = SymbolRunner(self, state)
            store.save(state)  # readable at once, before the first transition

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
        await self.hub.start()
        tasks = {asyncio.create_task(r.run(), name=f"legacy:{s}") for s, r in self.runners.items()}
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopper}:
                task.result()  # a symbol that ended raises its error here
        finally:
            for task in (*tasks, stopper):
                task.cancel()
            for task in (*tasks, stopper):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for r in self.runners.values():
                r.save()  # the last watch state (anchor, trailing peak)
            await self.hub.stop()
