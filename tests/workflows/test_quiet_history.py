"""History grows with decisions only (issue 12, item 5), on a real dev server with real
workers: a held symbol's live price and trailing level reach ``starter.py status`` from
its exit watch's heartbeat while the history gains no event, and the checkpoints that
remain (the watch's rare return) keep an idle and a held hour inside their budgets.

The hour is extrapolated from measured checkpoints, not waited for: activities run in
real time (the time-skipping server skips time only while nothing runs, and a watch always
runs), so a simulated hour of an idle symbol would take an hour.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowHistory
from temporalio.worker import Worker

from activities.market import MarketActivities
from activities.portfolio import PortfolioActivities
from tests.hang_guard import bounded
from tests.workflows.harness import Bench, TraderHandle, bench
from trader import contracts as c
from trader.contracts import STATUS_MEMO_KEY
from trader.core.market import Ticker
from trader.core.params import TraderParams
from trader.core.phases import Phase
from trader.core.rules import ExitReason, ExitRulesState
from trader.hub import MarketHub
from trader.observe.status_table import StatusRow, status_rows, traders_query
from trader.observe.watch_live import LIVE_MAX_AGE, pending_watch, watch_live
from trader.runtime.reconcile import request_reconciles
from workflows.symbol_trader import SymbolTrader

SCHEDULED = PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
DEFAULT_CHECKPOINT_S = TraderParams.model_fields["watch_checkpoint_seconds"].default
IDLE_HOUR_BUDGET = 60
HELD_HOUR_BUDGET = 100


def scheduled_events(history: WorkflowHistory, activity: str) -> list[int]:
    """Event ids of ``activity``'s ScheduledEvents."""
    return [
        e.event_id
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity
    ]


def _completed(history: WorkflowHistory, activity: str) -> list[int]:
    scheduled = set(scheduled_events(history, activity))
    return [
        e.event_id
        for e in history.events
        if e.HasField("activity_task_completed_event_attributes")
        and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled
    ]


async def _row(b: Bench, handle: TraderHandle) -> StatusRow | None:
    rows = await status_rows(b.client, traders_query(b.task_queue))
    return next((r for r in rows if r.workflow_id == handle.id), None)


async def _until_row(b: Bench, handle: TraderHandle, price: D) -> StatusRow:
    """The symbol's status row once it shows ``price`` (a wait, not a timed assertion)."""
    for _ in range(300):
        row = await _row(b, handle)
        if row and row.memo and row.memo.price == price:
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f"status never showed {price}: {row}")


async def test_status_shows_a_held_symbols_live_price_without_history(dev_env, tmp_path):
    async with bench(dev_env.client, tmp_path) as b:
        h = await b.start(watch_checkpoint_seconds=DEFAULT_CHECKPOINT_S)
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")  # a 2.1 % drop: buys
        held = await b.wait_phase(h, Phase.POSITION)
        entry = held.trade.entry_price
        # New highs inside the take-profit: the trailing stop arms (1 %) and rises, which
        # the workflow only learns of at a decision.
        for price in (D("99.0"), D("99.5"), D("100.0")):
            b.set_price("BTC/USDT", str(price))
            row = await _until_row(b, h, price)
            assert row.phase == "position" and row.memo is not None
            assert row.memo.trailing == price * D("0.995")  # 0.5 % below the peak
            assert row.memo.pnl_pct == (price / entry - 1) * 100
        history = await h.fetch_history()
        # One exit watch, armed at POSITION and still out: no checkpoint, no memo upsert.
        assert len(scheduled_events(history, str(c.WATCH_EXIT))) == 1
        assert _completed(history, str(c.WATCH_EXIT)) == []
        assert (await b.state(h)).trade.exits.trailing.trigger == 0  # nor has the workflow
        # The decision still comes: through the trailing stop raised to 99.50.
        b.set_price("BTC/USDT", "99.40")
        done = await b.wait_for(h, lambda s: s.totals.trades_closed == 1, what="the exit")
    assert done.note.startswith("trailing_stop")


async def _events_per_checkpoint(b: Bench, h: TraderHandle, activity: str) -> float:
    """History events per watch return, over three returns of a 1 s checkpoint (from the
    third: the phase's own side effects, such as the entry notification, are over)."""
    for _ in range(300):
        history = await h.fetch_history()
        scheduled = scheduled_events(history, activity)
        if len(scheduled) >= 6:
            return (scheduled[5] - scheduled[2]) / 3
        await asyncio.sleep(0.2)
    raise AssertionError(f"{activity} never returned at its checkpoint")


async def test_an_idle_and_a_held_hour_stay_within_their_event_budgets(dev_env, tmp_path):
    async with bench(dev_env.client, tmp_path) as b:
        h = await b.start(watch_checkpoint_seconds=1)
        await b.wait_phase(h, Phase.IDLE)
        idle = await _events_per_checkpoint(b, h, str(c.WATCH_ENTRY))
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.POSITION)
        held = await _events_per_checkpoint(b, h, str(c.WATCH_EXIT))
    per_hour = 3600 / DEFAULT_CHECKPOINT_S
    assert idle == 6  # the watch's scheduled, started, completed and one workflow task
    # And the memo upsert (price and PnL for the status table) and the max-hold timer the
    # workflow races the watch against, cancelled and started again.
    assert held == 9
    assert idle * per_hour <= IDLE_HOUR_BUDGET
    assert held * per_hour <= HELD_HOUR_BUDGET


async def _until_live(b: Bench, h: TraderHandle, ok: Callable[[c.WatchLive], bool]) -> c.WatchLive:
    """The watch's heartbeat once ``ok`` holds for it (a wait, not a timed assertion)."""
    for _ in range(300):
        seen = await watch_live(b.client, h.id)
        if seen is not None and ok(seen):
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"the watch never heartbeated that: {seen}")


async def test_a_cancelled_watch_hands_its_progress_back(dev_env, tmp_path):
    """Between checkpoints only the watch knows the anchor and the trailing stop: a pause,
    a reconcile request or a stop cancels it, and the workflow keeps what it reached
    (the watch-handback patch) instead of the last checkpoint's."""
    async with bench(dev_env.client, tmp_path) as b:
        h = await b.start(watch_checkpoint_seconds=DEFAULT_CHECKPOINT_S)
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "102")  # a new high: the anchor rises with it
        await _until_live(b, h, lambda seen: seen.anchor == D(102))
        b.set_price("BTC/USDT", "101")  # below the high: a watch started now anchors at 101
        await _until_live(b, h, lambda seen: seen.price == D(101))
        await h.signal(SymbolTrader.pause_entries)
        paused = await b.wait_for(h, lambda s: s.controls.entries_paused, what="paused")
        await b.wait_for(h, lambda s: s.entry_watch.anchor == D(102), what="the anchor kept")
        assert paused.phase is Phase.IDLE
        await h.signal(SymbolTrader.resume_entries)
        b.set_price("BTC/USDT", "99.90")  # 2.06 % below 102 (1.1 % below 101): buys
        held = await b.wait_phase(h, Phase.POSITION)
        entry = held.trade.entry_price
        high = (entry * D("1.015")).quantize(D("0.01"))  # arms the trailing stop (1 %)
        b.set_price("BTC/USDT", str(high))
        armed = await _until_live(b, h, lambda seen: seen.trailing > 0)
        # Off the peak, above the stop: a watch started now would arm a lower one.
        b.set_price("BTC/USDT", str((high * D("0.997")).quantize(D("0.01"))))
        await _until_live(b, h, lambda seen: seen.price < high)
        await h.signal(SymbolTrader.reconcile, c.ReconcileRequest(reason="test"))
        await b.wait_for(
            h,
            lambda s: s.trade.exits.trailing.trigger == armed.trailing,
            what="the trailing stop kept through the reconcile",
        )
        await _until_live(b, h, lambda seen: seen.trailing == armed.trailing)  # re-armed
        # A new high raises the stop after the reconcile's memo: only the stop's handback
        # brings it to the stopped symbol's memo.
        b.set_price("BTC/USDT", str((high * D("1.005")).quantize(D("0.01"))))
        raised = await _until_live(b, h, lambda seen: seen.trailing > armed.trailing)
        await h.signal(SymbolTrader.shutdown, c.ShutdownRequest(close_position=False))
        final = await bounded(h.result(), 120, "the stopped trader")
        memo = await (await h.describe()).memo_value(STATUS_MEMO_KEY, type_hint=c.StatusMemo)
    assert memo.trailing == raised.trailing  # what the stopped symbol's row shows
    assert final.phase is Phase.POSITION and final.holds_position
    assert (
        final.trade.exits.trailing
        == ExitRulesState.model_validate(
            {"trailing": {"peak": raised.peak, "trigger": raised.trailing}}
        ).trailing
    )
    assert final.totals.trades_closed == 0


class _LostWatch:
    """An exit watch whose worker is lost after its first heartbeat: it heartbeats an armed
    trailing stop once, then neither heartbeats nor answers its cancellation (for a while:
    the test's worker must still shut down), so the heartbeat timeout ends it. Later
    attempts are the real watch."""

    previous_release = False

    def __init__(self, real: MarketActivities, state: ExitRulesState) -> None:
        self.real, self.state, self.lost = real, state, asyncio.Event()

    @activity.defn(name=str(c.WATCH_EXIT))
    async def watch_exit(self, inp: c.WatchExitInput) -> c.WatchExitResult:
        if self.lost.is_set():
            return await self.real.watch_exit(inp)
        live = c.WatchLive(price=D(1), ts_ms=1, trailing=self.state.trailing.trigger)
        state = self.state.model_dump(mode="json")
        if self.previous_release:  # its three details: peak, trigger, the state model
            activity.heartbeat(str(self.state.trailing.peak), "0", state)
        else:
            activity.heartbeat("0", "0", live.model_dump(mode="json"), state)
        self.lost.set()
        end = asyncio.get_running_loop().time() + 20
        while (left := end - asyncio.get_running_loop().time()) > 0:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(left)
        raise RuntimeError("lost")


class _LostOldWatch(_LostWatch):
    """As ``_LostWatch``, on a worker of the previous release (a rolling deploy)."""

    previous_release = True


@contextlib.asynccontextmanager
async def _own_watch_worker(b: Bench, stand_in: Any) -> AsyncIterator[Any]:
    """The symbols started inside run their watches on a worker of their own, whose watch
    activities are a ``stand_in(real activities, ARMED)``'s where it has them, yielded."""
    hub = MarketHub(b.exchange, poll_interval_s=0.05)
    real = MarketActivities(hub, b.exchange)
    watch = stand_in(real, ARMED)
    queue = f"{b.watch_queue}-own"
    worker = Worker(
        b.client,
        task_queue=queue,
        activities=[
            getattr(watch, "watch_entry", real.watch_entry),
            getattr(watch, "watch_exit", real.watch_exit),
        ],
        graceful_shutdown_timeout=timedelta(seconds=1),
    )
    slots = Worker(
        b.client,
        task_queue=c.slot_task_queue(queue),
        activities=[PortfolioActivities(b.client, task_queue=b.task_queue).acquire_slot],
    )
    async with worker, slots:
        b.watch_queue = queue
        yield watch
    await hub.stop()


async def _bought(b: Bench, **params: Any) -> TraderHandle:
    """A symbol that buys at 97.90 and holds."""
    h = await b.start(watch_checkpoint_seconds=DEFAULT_CHECKPOINT_S, **params)
    await b.wait_phase(h, Phase.IDLE)
    b.set_price("BTC/USDT", "97.90")
    await b.wait_phase(h, Phase.POSITION)
    return h


# Armed below the 97.90 the symbol buys and stays at: a fresh watch would not be.
ARMED = ExitRulesState.model_validate({"trailing": {"peak": "98.9", "trigger": "97.5"}})


async def _reconcile_keeps(b: Bench, h: TraderHandle, armed: ExitRulesState) -> None:
    await h.signal(SymbolTrader.reconcile, c.ReconcileRequest(reason="test"))
    kept = await b.wait_for(
        h, lambda s: s.trade.exits == armed, timeout=60, what="the watch's last heartbeat taken"
    )
    assert kept.phase is Phase.POSITION and kept.holds_position
    await h.signal(SymbolTrader.shutdown, c.ShutdownRequest(close_position=False))
    final = await bounded(h.result(), 120, "the stopped trader")
    assert final.trade.exits == armed


@pytest.mark.parametrize("stand_in", [_LostWatch, _LostOldWatch], ids=["current", "previous"])
async def test_a_watch_lost_with_its_worker_hands_back_its_last_heartbeat(
    dev_env, tmp_path, stand_in
):
    """A reconcile request cancels a watch whose worker is gone (a worker start asks each
    holding symbol for one): the heartbeat timeout ends it, and the workflow takes the
    rule state of its last heartbeat, not the last checkpoint's."""
    async with bench(dev_env.client, tmp_path) as b, _own_watch_worker(b, stand_in) as lost:
        h = await _bought(b, watch_heartbeat_timeout_seconds=3 * LIVE_MAX_AGE.total_seconds())
        await asyncio.wait_for(lost.lost.wait(), timeout=30)
        # Lost: its heartbeat ages until the timeout, and once older than LIVE_MAX_AGE it
        # is no live price (status shows the memo's, not the lost attempt's).
        for _ in range(300):
            pending = await pending_watch(b.client, h.id)
            assert pending is not None and pending.attempt == 1, pending  # not timed out yet
            age = datetime.now(UTC) - pending.last_heartbeat_time.ToDatetime(tzinfo=UTC)
            if age > LIVE_MAX_AGE:
                break
            await asyncio.sleep(0.1)
        assert await watch_live(b.client, h.id) is None
        await _reconcile_keeps(b, h, ARMED)


class _FailingWatch:
    """An exit watch that heartbeats an armed trailing stop and fails, attempt after
    attempt (its exchange down, say), until ``healed``: between attempts it sits in retry
    backoff, where a cancel ends it at once on the server, with no details."""

    def __init__(self, real: MarketActivities, state: ExitRulesState) -> None:
        self.real, self.state = real, state
        self.failed, self.healed = 0, False

    @activity.defn(name=str(c.WATCH_EXIT))
    async def watch_exit(self, inp: c.WatchExitInput) -> c.WatchExitResult:
        if self.healed:
            return await self.real.watch_exit(inp)
        live = c.WatchLive(price=D(1), ts_ms=1, trailing=self.state.trailing.trigger)
        activity.heartbeat(
            "0", "0", live.model_dump(mode="json"), self.state.model_dump(mode="json")
        )
        self.failed += 1
        raise RuntimeError("exchange down")


async def test_a_watch_in_retry_backoff_hands_back_its_last_heartbeat(dev_env, tmp_path):
    """A reconcile request while the exit watch waits between two attempts: the server
    cancels it at once, without details, and the workflow takes the trailing level of
    its last heartbeat (read before the cancel), not the last checkpoint's."""
    async with bench(dev_env.client, tmp_path) as b, _own_watch_worker(b, _FailingWatch) as failing:
        h = await _bought(b)
        pending = None
        for _ in range(300):  # the third failure: a 4 s backoff follows
            pending = await pending_watch(b.client, h.id)
            if failing.failed >= 3 and pending and pending.state == SCHEDULED:
                break
            await asyncio.sleep(0.1)
        assert pending is not None and pending.state == SCHEDULED, pending
        assert await watch_live(b.client, h.id) is None  # a failed attempt's: not live
        failing.healed = True  # the next watch (after the reconcile) is the real one
        await _reconcile_keeps(b, h, ARMED)


class _FiresAtTheCancel:
    """An exit watch whose stop-loss fires just as its workflow cancels it: the first
    attempt returns that decision when cancelled (a watch that saw the price at that
    instant). Later watches are the real one."""

    def __init__(self, real: MarketActivities, state: ExitRulesState) -> None:
        self.real, self.waiting = real, asyncio.Event()

    @activity.defn(name=str(c.WATCH_EXIT))
    async def watch_exit(self, inp: c.WatchExitInput) -> c.WatchExitResult:
        if self.waiting.is_set():
            return await self.real.watch_exit(inp)
        self.waiting.set()
        await _until_cancelled()
        px = inp.entry_price * D("0.9")
        return c.WatchExitResult(
            fired=True,
            reason=ExitReason.STOP_LOSS,
            detail=f"stop-loss at {px}",
            ticker=Ticker(symbol=inp.symbol, ts_ms=1, bid=px, ask=px, last=px),
            state=inp.state,
        )


async def _until_cancelled() -> None:
    """Heartbeat (so the cancellation is delivered) until the workflow cancels."""
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            await asyncio.sleep(0.1)
            activity.heartbeat()


async def test_a_stop_loss_that_fires_as_a_reconcile_cancels_the_watch_is_sold(dev_env, tmp_path):
    """The watch's decision and the reconcile's cancel cross: the decision is not lost,
    the exit stands and is sold once the account is checked."""
    async with bench(dev_env.client, tmp_path) as b, _own_watch_worker(b, _FiresAtTheCancel) as w:
        h = await _bought(b)  # the price stays at the entry: no later watch would sell
        await asyncio.wait_for(w.waiting.wait(), timeout=30)
        await h.signal(SymbolTrader.reconcile, c.ReconcileRequest(reason="test"))
        sold = await b.wait_for(
            h, lambda s: s.totals.trades_closed == 1, timeout=60, what="the stop-loss sold"
        )
        await h.signal(SymbolTrader.shutdown, c.ShutdownRequest(close_position=False))
        await bounded(h.result(), 120, "the stopped trader")
    assert not sold.holds_position and sold.controls.reconcile_requested is None


class _GarbledWatch:
    """An exit watch whose heartbeat's live detail is not a ``WatchLive`` (a release that
    changed it, a bug): it keeps watching, heartbeating that."""

    def __init__(self, real: MarketActivities, state: ExitRulesState) -> None:
        self.beating = asyncio.Event()

    @activity.defn(name=str(c.WATCH_EXIT))
    async def watch_exit(self, inp: c.WatchExitInput) -> c.WatchExitResult:
        while True:
            activity.heartbeat("0", "0", {"price": "not a price"}, inp.state.model_dump())
            self.beating.set()
            await asyncio.sleep(0.2)


async def test_a_garbled_heartbeat_costs_its_row_the_live_price_not_the_table(dev_env, tmp_path):
    """``status`` (the table, Telegram /status) shows the memo's price for a held symbol
    whose watch heartbeat cannot be read, and a worker start still asks it to reconcile
    (without describing it at all)."""
    async with bench(dev_env.client, tmp_path) as b, _own_watch_worker(b, _GarbledWatch) as w:
        h = await _bought(b)
        await asyncio.wait_for(w.beating.wait(), timeout=30)
        await _until_beat(b, h)
        row = await _row(b, h)
        assert row is not None and row.memo is not None
        assert row.memo.price == row.memo.entry  # the memo's, published at the buy
        assert await request_reconciles(b.client, b.task_queue, reason="test") == [h.id]
        await h.signal(SymbolTrader.shutdown, c.ShutdownRequest(close_position=False))
        await bounded(h.result(), 120, "the stopped trader")


async def _until_beat(b: Bench, h: TraderHandle) -> None:
    """The server has the watch's heartbeat (a wait, not a timed assertion)."""
    for _ in range(300):
        pending = await pending_watch(b.client, h.id)
        if pending is not None and len(pending.heartbeat_details.payloads) == 4:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("no heartbeat reached the server")


class _DropAtThePause:
    """An entry watch whose drop fires just as a pause cancels it (it returns the fired
    decision when cancelled). Later watches are the real one."""

    def __init__(self, real: MarketActivities, state: ExitRulesState) -> None:
        self.real, self.waiting = real, asyncio.Event()

    @activity.defn(name=str(c.WATCH_ENTRY))
    async def watch_entry(self, inp: c.WatchEntryInput) -> c.WatchEntryResult:
        if self.waiting.is_set():
            return await self.real.watch_entry(inp)
        self.waiting.set()
        await _until_cancelled()
        px = inp.state.anchor * D("0.97")
        return c.WatchEntryResult(
            fired=True,
            ticker=Ticker(symbol=inp.symbol, ts_ms=1, bid=px, ask=px, last=px),
            state=inp.state,
            trigger_price=px,
            drop_pct=D(3),
        )


async def test_a_drop_that_fires_as_a_pause_cancels_the_watch_is_not_bought(dev_env, tmp_path):
    """The entry side of a decision crossing a cancel: a paused symbol buys nothing (the
    pause forbids it), and keeps its anchor, so after a resume (or a reconcile) the next
    watch fires again if the drop still holds."""
    async with bench(dev_env.client, tmp_path) as b, _own_watch_worker(b, _DropAtThePause) as w:
        h = await b.start(watch_checkpoint_seconds=DEFAULT_CHECKPOINT_S)
        idle = await b.wait_phase(h, Phase.IDLE)
        await asyncio.wait_for(w.waiting.wait(), timeout=30)
        await h.signal(SymbolTrader.pause_entries)
        paused = await b.wait_for(h, lambda s: s.controls.entries_paused, what="paused")
        await b.wait_for(h, lambda s: s.current_price < idle.current_price, what="handed back")
        await h.signal(SymbolTrader.shutdown, c.ShutdownRequest(close_position=False))
        final = await bounded(h.result(), 120, "the stopped trader")
    assert paused.phase is Phase.IDLE and final.phase is Phase.IDLE
    assert b.exchange.all_orders() == [] and not final.holds_position
    assert final.entry_watch.anchor == idle.entry_watch.anchor
