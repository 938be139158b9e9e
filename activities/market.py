"""Watch activities: long-running, heartbeating, read-only.

A watch evaluates the pure entry or exit rule on every ticker the hub publishes and returns
only when the rule fires or at a coarse checkpoint, so the workflow history grows with
decisions, not ticks. Its evolving state (anchor, window, peak, trailing trigger) is in
its heartbeat details: a retry on another worker resumes from there. The same heartbeat
carries what the watch last saw (``WatchLive``: price, anchor, trailing level), which the
Web UI's pending activity and ``starter.py status`` show without a history event: the
checkpoint is rare (``watch_checkpoint_seconds``, 10 minutes by default), so the history
grows with decisions. Watches never act on the exchange; only the order activities do (a
cancelled watch learns of it only at its next heartbeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from trader import contracts as c
from trader.core.market import Ticker
from trader.core.params import TraderParams
from trader.core.rules import (
    EntryRecheck,
    EntrySignal,
    EntryWatch,
    EntryWatchState,
    ExitRulesState,
    check_guards,
    evaluate_exit,
    sma_of,
    update_exit_rules,
)
from trader.exchange.port import Exchange
from trader.hub import MarketHub
from trader.observe.metrics import TraderMetrics

if TYPE_CHECKING:
    from activities.portfolio import SlotBoard

_SMA_REFRESH_S = 60.0  # one-minute closes: a fresher SMA than this cannot differ


def entry_heartbeat_s(params: TraderParams) -> float:
    """How often an entry watch heartbeats: a quarter of the heartbeat timeout (idle symbols
    are most of a watchlist; their live price needs no second's freshness, and each sent
    heartbeat is a server request)."""
    return max(c.LIVE_HEARTBEAT.total_seconds(), params.watch_heartbeat_timeout_seconds / 4)


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
        if (
            details is None
            or details.cancel_requested
            or not (details.not_found or details.worker_shutdown)
        ):
            raise
        why = "workflow gone" if details.not_found else "worker shutting down"
        raise ApplicationError(
            f"watch stopped: {why}", category=ApplicationErrorCategory.BENIGN
        ) from None


class MarketActivities:
    def __init__(
        self,
        hub: MarketHub,
        exchange: Exchange,
        *,
        metrics: TraderMetrics | None = None,
        slots: SlotBoard | None = None,
    ) -> None:
        self.hub = hub
        self.exchange = exchange
        self.metrics = metrics
        self.slots = slots

    def _observe(self, symbol: str, kind: str, ts_ms: int, *, returning: bool) -> None:
        # Lag = how old the price a rule just judged is; the checkpoint timestamp shows a
        # watch that stopped returning to its workflow (alert: docs/metrics.md).
        if self.metrics is None:
            return
        now = time.time()
        self.metrics.watch_tick(symbol, kind, max(now - ts_ms / 1000, 0.0), ts=now)
        if returning:
            self.metrics.watch_returned(symbol, kind, now)

    @activity.defn(name=c.WATCH_ENTRY)
    async def watch_entry(self, inp: c.WatchEntryInput) -> c.WatchEntryResult:
        state = _resumed(inp.state, _old_entry_heartbeat)
        deadline = time.monotonic() + inp.params.watch_checkpoint_seconds
        with _routine_cancel():
            return await self._watch_entry(inp, EntryWatch(state, inp.params), deadline)

    async def _watch_entry(
        self, inp: c.WatchEntryInput, watch: EntryWatch, deadline: float
    ) -> c.WatchEntryResult:
        p, ticks = inp.params, 0
        beat_every, beat_at = entry_heartbeat_s(p), float("-inf")
        sma: Decimal | None = None
        sma_at: float | None = None  # when ``sma`` was fetched (monotonic); None: not yet
        ticker: Ticker | None = None  # the last one seen
        signal: EntrySignal | None = None
        waiting = _waiting(lambda: _entry_details(watch.state()))
        try:
            async with self.hub.subscription(inp.symbol, on_wait=waiting) as stream:
                async for ticker in stream:
                    ticks += 1
                    signal = watch.see(ticker.ts_ms, ticker.last)
                    fired = signal.triggered
                    if fired and watch.recheck:
                        if sma_at is None or time.monotonic() - sma_at >= _SMA_REFRESH_S:
                            sma_at = time.monotonic()
                            sma = await self._sma(inp.symbol, p.sma_guard_period, ticker.ts_ms)
                        fired = await self._block_cleared(
                            inp, watch.recheck, ticker, sma, fresh=ticks == 1
                        )
                    returning = fired or time.monotonic() >= deadline
                    self._observe(inp.symbol, "entry", ticker.ts_ms, returning=returning)
                    if returning:
                        if fired and sma_at is None:
                            sma = await self._sma(inp.symbol, p.sma_guard_period, ticker.ts_ms)
                        return c.WatchEntryResult(
                            fired=fired,
                            ticker=ticker,
                            state=watch.state(),
                            trigger_price=signal.trigger_price,
                            drop_pct=signal.drop_pct,
                            sma=sma if fired else None,
                            ticks=ticks,
                        )
                    if time.monotonic() - beat_at < beat_every:
                        continue
                    beat_at = time.monotonic()
                    state = watch.state()
                    live = c.WatchLive(price=ticker.last, ts_ms=ticker.ts_ms, anchor=state.anchor)
                    # The previous release's positional values first (a retry on one of its
                    # workers during a rolling deploy), what the watch saw, then the state as
                    # one model (last: what both releases resume from).
                    activity.heartbeat(
                        str(state.anchor),
                        _pairs(state.window),
                        live.model_dump(mode="json"),
                        state.model_dump(mode="json"),
                    )
        except asyncio.CancelledError:
            if not _cancel_requested():
                raise
            # The state handed back (see _cancel_requested), also before a first tick: a
            # retry resumed from the heartbeat, which is newer than the workflow's copy.
            return c.WatchEntryResult(
                fired=False,
                ticker=ticker,
                state=watch.state(),
                trigger_price=signal.trigger_price if signal else Decimal(0),
                drop_pct=signal.drop_pct if signal else Decimal(0),
                ticks=ticks,
            )
        raise RuntimeError("market stream ended")  # the hub's stream is endless

    async def _block_cleared(
        self,
        inp: c.WatchEntryInput,
        recheck: EntryRecheck,
        ticker: Ticker,
        sma: Decimal | None,
        *,
        fresh: bool,
    ) -> bool:
        """A blocked drop still holds: has the block cleared (guards pass, a slot free)?"""
        if not check_guards(ticker, inp.params, sma=sma).passed:
            return False
        if recheck is EntryRecheck.SLOT and self.slots is not None and inp.portfolio_id:
            return await self.slots.free(inp.portfolio_id, fresh=fresh) > 0
        return True

    async def _sma(self, symbol: str, period: int, now_ms: int) -> Decimal | None:
        """SMA of the last ``period`` one-minute closes, for the SMA guard."""
        if period <= 0:
            return None
        candles = await self.exchange.fetch_ohlcv(
            symbol, since_ms=now_ms - (period + 1) * 60_000, limit=period + 1
        )
        return sma_of([k.close for k in candles], period)

    @activity.defn(name=c.WATCH_EXIT)
    async def watch_exit(self, inp: c.WatchExitInput) -> c.WatchExitResult:
        rules = _resumed(inp.state, _old_exit_heartbeat)
        deadline = time.monotonic() + inp.params.watch_checkpoint_seconds
        with _routine_cancel():
            return await self._watch_exit(inp, rules, deadline)

    async def _watch_exit(
        self, inp: c.WatchExitInput, rules: ExitRulesState, deadline: float
    ) -> c.WatchExitResult:
        p, ticks = inp.params, 0
        ticker: Ticker | None = None  # the last one seen
        beat_at, beat_trailing = float("-inf"), rules.trailing
        waiting = _waiting(lambda: _exit_details(rules))
        try:
            async with self.hub.subscription(inp.symbol, on_wait=waiting) as stream:
                async for ticker in stream:
                    ticks += 1
                    price = ticker.last
                    rules = update_exit_rules(rules, price, inp.entry_price, p)
                    decision = evaluate_exit(
                        price=price,
                        entry_price=inp.entry_price,
                        rules=rules,
                        entry_ts=inp.entry_ts,
                        # Max hold is the workflow's timer alone (every SymbolTrader that
                        # starts this watch races one): judged here too, the two fired in
                        # one instant, and a workflow task cancelling a watch that had just
                        # completed stalled on the test server (docs/migration.md, "Found").
                        now=None,
                        params=p,
                    )
                    returning = decision.exit or time.monotonic() >= deadline
                    self._observe(inp.symbol, "exit", ticker.ts_ms, returning=returning)
                    if returning:
                        return c.WatchExitResult(
                            fired=decision.exit,
                            reason=decision.reason,
                            detail=decision.detail,
                            ticker=ticker,
                            state=rules,
                            ticks=ticks,
                        )
                    # At most every LIVE_HEARTBEAT (as the SDK sends them: encoding every
                    # tick's would be wasted), at once when the trailing stop moves.
                    if (
                        rules.trailing == beat_trailing
                        and time.monotonic() - beat_at < c.LIVE_HEARTBEAT.total_seconds()
                    ):
                        continue
                    beat_at, beat_trailing = time.monotonic(), rules.trailing
                    live = c.WatchLive(
                        price=price,
                        ts_ms=ticker.ts_ms,
                        trailing=rules.trailing.trigger,
                        peak=rules.trailing.peak,
                    )
                    activity.heartbeat(
                        str(rules.trailing.peak),
                        str(rules.trailing.trigger),
                        live.model_dump(mode="json"),
                        rules.model_dump(mode="json"),
                    )
        except asyncio.CancelledError:
            if not _cancel_requested():
                raise
            return c.WatchExitResult(  # handed back, also before a first tick (as above)
                fired=False, reason=None, detail="", ticker=ticker, state=rules, ticks=ticks
            )
        raise RuntimeError("market stream ended")


def _entry_details(state: EntryWatchState) -> tuple[Any, ...]:
    # As the watch loop heartbeats them: the state model last (a retry resumes from it).
    return str(state.anchor), _pairs(state.window), state.model_dump(mode="json")


def _exit_details(rules: ExitRulesState) -> tuple[Any, ...]:
    return str(rules.trailing.peak), str(rules.trailing.trigger), rules.model_dump(mode="json")


def _waiting(details: Callable[[], tuple[Any, ...]]) -> Callable[[c.PriceWait], None]:
    """What the hub calls while no fresh price comes: the watch heartbeats its state with
    ``{"price_wait": ...}`` just before the state model, and judges nothing."""

    def beat(wait: c.PriceWait) -> None:
        *head, state = details()
        activity.heartbeat(*head, {c.PRICE_WAIT_KEY: wait.model_dump(mode="json")}, state)

    return beat


S = TypeVar("S", EntryWatchState, ExitRulesState)


def _resumed(start: S, old_shape: Callable[[Sequence[Any]], dict[str, Any]]) -> S:
    """The watch state to start from: the last heartbeat's after a retry (the model, last;
    from a worker of the previous release only positional values, which update the
    input's state with what they carry), else the input's."""
    details = activity.info().heartbeat_details
    if not details:
        return start
    if isinstance(details[-1], dict):
        return type(start).model_validate(details[-1])
    return type(start).model_validate({**start.model_dump(), **old_shape(details)})


def _cancel_requested() -> bool:
    """The workflow cancelled this watch (a pause, a stop, a reconcile request): the watch
    then returns its state instead of raising, so a workflow that waits for the
    cancellation (the ``watch-handback`` patch) keeps the anchor and trailing-stop progress
    since the last checkpoint. A workflow that does not wait ignores the late result."""
    details = activity.cancellation_details()
    return details is not None and details.cancel_requested


def _pairs(window: list[tuple[int, Decimal]]) -> list[tuple[int, str]]:
    return [(ts, str(price)) for ts, price in window]


def _old_entry_heartbeat(details: Sequence[Any]) -> dict[str, Any]:
    return {"anchor": details[0], "window": details[1]}


def _old_exit_heartbeat(details: Sequence[Any]) -> dict[str, Any]:
    return {"trailing": {"peak": details[0], "trigger": details[1]}}
