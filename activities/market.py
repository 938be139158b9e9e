"""Watch activities: long-running, heartbeating, read-only.

A watch evaluates the pure entry or exit rule on every ticker the hub publishes and returns
only when the rule fires or at a coarse checkpoint, so the workflow history grows with
decisions, not ticks. Its evolving state (anchor, window, peak, trailing trigger) is in
its heartbeat details: a retry on another worker resumes from there. Watches never act on
the exchange; only the order activities do (a cancelled watch learns of it only at its next
heartbeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from decimal import Decimal

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from trader import contracts as c
from trader.core.params import AnchorMode
from trader.core.rules import (
    RollingHigh,
    SmaWindow,
    TrailingState,
    evaluate_entry,
    evaluate_exit,
    next_anchor,
    update_trailing,
)
from trader.exchange.port import Exchange
from trader.hub import MarketHub
from trader.observe.metrics import TraderMetrics

_MAX_WINDOW_CARRY = 64


@contextlib.contextmanager
def _routine_cancel() -> Iterator[None]:
    """A watch cancelled because its workflow is gone or its worker is stopping is routine
    (it is read-only; a live workflow gets it retried elsewhere at once). The SDK would log
    such a cancel as a warning with a traceback: report it as a benign failure instead,
    which it logs at debug level. A cancel the workflow asked for is left as it is."""
    try:
        yield
    except asyncio.CancelledError:
        details = activity.cancellation_details()
        if details is None or details.cancel_requested or not (
                details.not_found or details.worker_shutdown):
            raise
        why = "workflow gone" if details.not_found else "worker shutting down"
        raise ApplicationError(f"watch stopped: {why}",
                               category=ApplicationErrorCategory.BENIGN) from None


class MarketActivities:
    def __init__(self, hub: MarketHub, exchange: Exchange, *,
                 metrics: TraderMetrics | None = None) -> None:
        self.hub = hub
        self.exchange = exchange
        self.metrics = metrics

    def _observe(self, symbol: str, kind: str, ts_ms: int, *, returning: bool) -> None:
        # Lag = how old the price a rule just judged is; the checkpoint timestamp shows a
        # watch that stopped returning to its workflow (alert: docs/metrics.md).
        if self.metrics is None:
            return
        now = time.time()
        self.metrics.watch_tick(symbol, kind, max(now - ts_ms / 1000, 0.0))
        if returning:
            self.metrics.watch_returned(symbol, kind, now)

    @activity.defn(name=c.WATCH_ENTRY)
    async def watch_entry(self, inp: c.WatchEntryInput) -> c.WatchEntryResult:
        p = inp.params
        anchor, window_items = inp.anchor, list(inp.window)
        details = activity.info().heartbeat_details
        if details:  # resumed after a retry: continue from the last heartbeat
            anchor = Decimal(details[0])
            window_items = [(int(t), Decimal(v)) for t, v in details[1]]
        window = RollingHigh(p.drop_lookback_seconds * 1000)
        for ts, price in window_items:
            window.add(ts, price)
        deadline = time.monotonic() + p.watch_checkpoint_seconds
        with _routine_cancel():
            return await self._watch_entry(inp, anchor, window, deadline)

    async def _watch_entry(self, inp: c.WatchEntryInput, anchor: Decimal, window: RollingHigh,
                           deadline: float) -> c.WatchEntryResult:
        p, ticks = inp.params, 0
        async with self.hub.subscription(inp.symbol) as stream:
            async for ticker in stream:
                ticks += 1
                price = ticker.last
                window.add(ticker.ts_ms, price)
                high = window.high() if p.anchor_mode is AnchorMode.WINDOW else None
                anchor = next_anchor(anchor, price, p.anchor_mode, window_high=high)
                signal = evaluate_entry(price, anchor, p)
                carry = window.items()[-_MAX_WINDOW_CARRY:]
                returning = signal.triggered or time.monotonic() >= deadline
                self._observe(inp.symbol, "entry", ticker.ts_ms, returning=returning)
                if returning:
                    sma = await self._sma(inp.symbol, p.sma_guard_period, ticker.ts_ms) \
                        if signal.triggered else None
                    return c.WatchEntryResult(
                        fired=signal.triggered, ticker=ticker, anchor=anchor,
                        trigger_price=signal.trigger_price, drop_pct=signal.drop_pct,
                        window=carry, sma=sma, ticks=ticks,
                    )
                activity.heartbeat(str(anchor), [(t, str(v)) for t, v in carry])
        raise RuntimeError("market stream ended")  # the hub's stream is endless

    async def _sma(self, symbol: str, period: int, now_ms: int) -> Decimal | None:
        """SMA of the last ``period`` one-minute closes, for the SMA guard."""
        if period <= 0:
            return None
        candles = await self.exchange.fetch_ohlcv(
            symbol, since_ms=now_ms - (period + 1) * 60_000, limit=period + 1
        )
        sma = SmaWindow(period)
        for candle in candles[-period:]:
            sma.add(candle.close)
        return sma.value()

    @activity.defn(name=c.WATCH_EXIT)
    async def watch_exit(self, inp: c.WatchExitInput) -> c.WatchExitResult:
        p = inp.params
        trailing = TrailingState(peak=inp.peak, trigger=inp.trailing_trigger)
        details = activity.info().heartbeat_details
        if details:
            trailing = TrailingState(peak=Decimal(details[0]), trigger=Decimal(details[1]))
        deadline = time.monotonic() + p.watch_checkpoint_seconds
        with _routine_cancel():
            return await self._watch_exit(inp, trailing, deadline)

    async def _watch_exit(self, inp: c.WatchExitInput, trailing: TrailingState,
                          deadline: float) -> c.WatchExitResult:
        p, ticks = inp.params, 0
        async with self.hub.subscription(inp.symbol) as stream:
            async for ticker in stream:
                ticks += 1
                price = ticker.last
                trailing = update_trailing(trailing, price, inp.entry_price, p)
                decision = evaluate_exit(
                    price=price, entry_price=inp.entry_price, trailing=trailing,
                    entry_ts=inp.entry_ts, now=ticker.ts_ms / 1000, params=p,
                )
                returning = decision.exit or time.monotonic() >= deadline
                self._observe(inp.symbol, "exit", ticker.ts_ms, returning=returning)
                if returning:
                    return c.WatchExitResult(
                        fired=decision.exit,
                        reason=decision.reason.value if decision.reason else None,
                        detail=decision.detail, ticker=ticker, peak=trailing.peak,
                        trailing_trigger=trailing.trigger, ticks=ticks,
                    )
                activity.heartbeat(str(trailing.peak), str(trailing.trigger))
        raise RuntimeError("market stream ended")
