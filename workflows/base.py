"""Shared machinery of the SymbolTrader: activity options, racing an activity against
signals and timers, transitions that publish to the Web UI, and background notifications."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError
from temporalio.exceptions import TimeoutError as ActivityTimeout
from temporalio.workflow import ActivityCancellationType, ActivityHandle

with workflow.unsafe.imports_passed_through():
    from trader import contracts as c
    from trader import search as sa
    from trader.core import ids
    from trader.core.consistency import SINCE_SLACK_S
    from trader.core.errors import NON_RETRYABLE_TYPES, ErrorType
    from trader.core.inventory import InventoryMove
    from trader.core.market import Order, Ticker
    from trader.core.params import backoff_seconds
    from trader.core.phases import SUCCESS_TRIGGERS, Trigger
    from trader.core.pnl import TradePnL
    from trader.core.state import CoinState, PhaseRecord
    from trader.observe.events import SINK, transition_event
    from workflows.details import render_details, status_memo

T = TypeVar("T")
In = TypeVar("In")

# Upserting the memo adds a command (a WorkflowPropertiesModified event) that histories
# recorded before it existed do not have: it only runs behind this patch.
STATUS_MEMO_PATCH = "status-memo"
# Selling what the account really holds, inventory, the 95 % rule, growing backoff, force
# exit in ERROR, standing exits, kept drops, reconciliation on resume (docs/architecture.md,
# "Money-correct under exchange reality"): all change commands, so all run behind this one
# patch, decided once at the start of each run (workflows/before_reality.py has the rest).
EXCHANGE_REALITY_PATCH = "exchange-reality"
# acquire_slot retried until the Portfolio answers (a refused or aborted Update, a server
# limit, a continue-as-new) instead of FSM_MAX_RETRIES then ERROR: a new retry policy.
SLOT_RETRY_PATCH = "slot-retry"
# acquire_slot on a task queue of its own (never holding an activity slot an order needs)
# and raced against a stop or a pause, which abandon the entry: a new activity task queue
# and a cancellation, so new commands.
SLOT_WAIT_PATCH = "slot-wait"
# The slot asked first by a local activity, in the workflow task that decided the entry: no
# activity task to dispatch and complete, and the buy is scheduled in that same task
# (docs/architecture.md, "The slot asked in the deciding workflow task"; docs/benchmarks.md
# measures it). A local activity's marker replaces the activity's events: new commands.
SLOT_LOCAL_PATCH = "slot-local"
SLOT_LOCAL_ATTEMPT = timedelta(seconds=2)
"""The local attempt's bound; it waits for an answer until ``SLOT_LOCAL_WAIT`` (less the
activity's ``SLOT_LOCAL_MARGIN``). Unanswered by then, refused as busy (a burst on this
worker) or failed, the slow path takes over: the activity on the slot queue, retried on the
server (no history per attempt) and raced against a stop or a pause. The workflow task that
runs the attempt sees no signal sent meanwhile: a stop or a pause sent during a granted
attempt is seen after place_order was scheduled, like one sent during PLACE_BUY (the buy
goes ahead, then the stop or the pause applies); during an unanswered one, by the slow
path's race."""
SLOT_LOCAL_WAIT = SLOT_LOCAL_ATTEMPT - c.SLOT_LOCAL_MARGIN
SLOT_LOCAL_QUEUED = timedelta(milliseconds=500)
"""How long the local attempt may wait for one of the worker's local-activity slots."""
# ERROR counts the order consistency window from the later of the decision and its own
# entry (the order phase may have retried its create until it gave up): the timer that
# waits the window out may now be started where old runs started none.
ERROR_WINDOW_PATCH = "error-window-from-entry"

LOCAL_ACTIVITY_FAILURES = FailureError
"""What a failed local activity raises in workflow code (temporalio 1.35): its own
ApplicationError, not wrapped in an ActivityError as an activity's failure is; a timeout
comes as ActivityError(TimeoutError) live but as the bare TimeoutError on replay, from the
marker (tests/test_replay.py replays one). Catching ActivityError alone let a failed local
activity fail the workflow, live or on a later replay."""

NOTIFY_ATTEMPT = timedelta(seconds=10)
"""One notify attempt (``trader/telegram/notifier.py``'s ``DEFAULT_ATTEMPT_S`` is the same)."""
NOTIFY_GIVE_UP = timedelta(hours=1)
"""A notification not sent within this is dropped (logged)."""
NOTIFY_DRAIN = timedelta(seconds=60)
"""How long a stop or a continue-as-new waits for notifications still being retried; then
they are cancelled (logged): a Telegram outage never holds a stop for NOTIFY_GIVE_UP."""
# The bounded wait is a timer (a new command): old runs drain as they did.
BOUNDED_DRAIN_PATCH = "bounded-notify-drain"
# A watch cancelled by a pause, a stop or a reconcile request hands its rule state back
# (activities/market.py returns it when cancelled) and the workflow waits for it, or for
# the heartbeat timeout's last details when its worker is gone: checkpoints are 10 minutes
# apart, so the workflow's own copy can be that old. A new cancellation type and a timer:
# new commands.
WATCH_HANDBACK_PATCH = "watch-handback"
HANDBACK_SLACK_S = 5.0
"""How much longer than the heartbeat timeout a cancelled watch is waited for."""


def error_type(err: BaseException) -> ErrorType | None:
    """The ApplicationError type behind an activity failure (what the workflow branches on);
    None when there is none or it is not an exchange error's."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if not isinstance(cause, ApplicationError):
        return None
    try:
        return ErrorType(cause.type)
    except ValueError:
        return None


def error_message(err: BaseException) -> str:
    cause = err.cause if isinstance(err, ActivityError) and err.cause else err
    return str(cause) or type(cause).__name__


class TraderBase:
    """State and helpers; the phase handlers live in the mixins.

    Attributes other than ``state`` are transient: rebuilt by replay, never needed across
    continue-as-new (which only happens in quiet phases).
    """

    inp: c.TraderInput
    state: CoinState
    _background: list[Any]
    _notifications: list[ActivityHandle[None]]
    _entry: c.WatchEntryResult | None
    _last_order: Order | None
    _max_hold_due: bool
    _handback: bool
    """The current watch hands its state back when cancelled (WATCH_HANDBACK_PATCH)."""
    _v2: bool
    """The run started under the ``exchange-reality`` patch (see EXCHANGE_REALITY_PATCH)."""

    @property
    def _is_simulated(self) -> bool:
        return self.state.simulated or not self.inp.params.global_trading

    def backoff_seconds(self) -> float:
        """FSM_BACKOFF_BASE_SECONDS doubled per consecutive failure, capped at the max."""
        return backoff_seconds(self.state.retry_count, self.inp.params)

    # --- activity options ------------------------------------------------------------
    @property
    def _exchange_retry(self) -> RetryPolicy:
        p = self.inp.params
        return RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=max(1.0, p.fsm_backoff_base_seconds)),
            maximum_attempts=p.fsm_max_retries,
            non_retryable_error_types=list(NON_RETRYABLE_TYPES),
        )

    async def _exchange_call(
        self, act: c.ActivityName[In, T], arg: In, *, summary: str | None = None
    ) -> T:
        """An exchange activity with the configured retries (FSM_MAX_RETRIES)."""
        result: T = await workflow.execute_activity(
            act,
            arg,
            result_type=act.result,
            start_to_close_timeout=timedelta(
                seconds=self.inp.params.order_activity_timeout_seconds
            ),
            retry_policy=self._exchange_retry,
            summary=summary,
        )
        return result

    async def _ledger_call(
        self, act: c.ActivityName[In, c.RecordResult], arg: In
    ) -> c.RecordResult:
        """A ledger write: retried until it succeeds (it is idempotent on its id), because
        a realized trade must never be lost."""
        result: c.RecordResult = await workflow.execute_activity(
            act,
            arg,
            result_type=act.result,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=60)),
            summary=f"{act} {self.state.symbol}",
        )
        return result

    async def _settle_order(
        self, timeout_s: float, *, until: Callable[[], bool] | None = None
    ) -> Order:
        """The current order in a final state: wait for it until the phase timeout (a
        workflow timer from when it was placed) or ``until``, then cancel what is left."""
        s = self.state
        ref = c.OrderRef(
            symbol=s.symbol,
            client_order_id=s.trade.order.client_order_id or "",
            simulated=s.simulated,
        )
        placed, self._last_order = self._last_order, None
        if placed is not None and placed.is_final:  # IOC/market: final when placed
            return placed
        remaining = s.trade.order.placed_ts + timeout_s - workflow.time()
        waited = await self._race(
            self._start_order_wait(ref), until=until, timeout=max(remaining, 0.001)
        )
        if isinstance(waited, Order):
            return waited
        side = s.trade.order.side.value if s.trade.order.side else "order"
        return await self._exchange_call(c.CANCEL_ORDER, ref, summary=f"cancel_{side} {s.symbol}")

    def _start_order_wait(self, ref: c.OrderRef) -> ActivityHandle[Order]:
        """Poll an order until final; bounded by the phase's workflow timer, not by itself."""
        return workflow.start_activity(
            c.WAIT_ORDER,
            ref,
            result_type=c.WAIT_ORDER.result,
            start_to_close_timeout=timedelta(hours=24),
            heartbeat_timeout=timedelta(seconds=self.inp.params.watch_heartbeat_timeout_seconds),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
            summary=f"wait_order {ref.symbol} {ref.client_order_id}",
        )

    def _start_watch(
        self, act: c.ActivityName[In, T], arg: In, *, summary: str = ""
    ) -> ActivityHandle[T]:
        """A long-running watch on the watch task queue; retried forever (read-only)."""
        p = self.inp.params
        self._handback = workflow.patched(WATCH_HANDBACK_PATCH)
        cancellation = (
            ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
            if self._handback
            else ActivityCancellationType.TRY_CANCEL
        )
        return workflow.start_activity(
            act,
            arg,
            result_type=act.result,
            task_queue=self.inp.watch_task_queue,
            start_to_close_timeout=timedelta(seconds=p.watch_checkpoint_seconds * 3 + 60),
            heartbeat_timeout=timedelta(seconds=p.watch_heartbeat_timeout_seconds),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
            ),
            summary=f"{act} {self.state.symbol}{': ' + summary if summary else ''}",
            cancellation_type=cancellation,
        )

    async def _handed_back(
        self, watch: ActivityHandle[T], act: c.ActivityName[Any, Any], until: Callable[[], bool]
    ) -> tuple[T | None, dict[str, Any] | None]:
        """Cancel a handback watch that ``_race`` left running and collect its progress:
        (its result, returned when cancelled) or (None, a rule state): the heartbeat
        timeout's last details when its worker is gone, else its last heartbeat read before
        the cancel (a watch between attempts is cancelled by the server at once, with no
        details). (None, None) when none of these exists or ``until`` (a force exit) cut
        the wait short."""
        beat = await self._last_watch_beat(act)  # first: the cancel may remove it at once
        watch.cancel()
        with contextlib.suppress(asyncio.TimeoutError):
            await workflow.wait_condition(
                lambda: watch.done() or until(),
                timeout=self.inp.params.watch_heartbeat_timeout_seconds + HANDBACK_SLACK_S,
            )
        if not watch.done():
            return None, None if until() else beat
        try:
            return watch.result(), None
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ActivityTimeout) and cause.last_heartbeat_details:
                last = cause.last_heartbeat_details[-1]
                if isinstance(last, dict):
                    return None, last
            return None, beat
        except asyncio.CancelledError:  # cancelled before it was scheduled: nothing seen
            return None, beat

    async def _last_watch_beat(self, act: c.ActivityName[Any, Any]) -> dict[str, Any] | None:
        """The pending watch's last heartbeat rule state (activities/watch_beat.py)."""
        try:
            got: c.LastBeatResult = await workflow.execute_local_activity(
                c.LAST_WATCH_BEAT,
                c.LastBeatInput(activity_type=str(act)),
                result_type=c.LastBeatResult,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
        except LOCAL_ACTIVITY_FAILURES:  # the server unreachable: the checkpoint's state stays
            return None
        return got.state

    async def _race(
        self,
        main: ActivityHandle[T],
        *,
        until: Callable[[], bool] | None = None,
        timeout: float | None = None,
        collect: bool = True,
    ) -> T | Literal["interrupted", "timeout"]:
        """Wait for ``main`` (an activity handle), a condition, or a timer, whichever is first.

        Returns the activity's result, or "interrupted" / "timeout"; on the latter two
        ``main`` is cancelled and waited for, unless not ``collect`` (a handback watch):
        then it is not waited for, and on "interrupted" not even cancelled (the caller
        does both, see ``_handed_back``). An activity failure propagates as ActivityError.
        """
        waiters: list[asyncio.Future[Any]] = [main]
        if until is not None or timeout is not None:
            waiters.append(
                asyncio.ensure_future(
                    workflow.wait_condition(until or (lambda: False), timeout=timeout)
                )
            )
        await workflow.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if main.done():
            outcome = "done"
        else:
            guard = waiters[1]
            outcome = (
                "timeout" if isinstance(guard.exception(), asyncio.TimeoutError) else "interrupted"
            )
        # A handback watch (not ``collect``) interrupted is left running: its caller reads
        # its last heartbeat, then cancels it (``_handed_back``).
        keep_main = not collect and outcome == "interrupted"
        for w in waiters[1:] if keep_main else waiters:
            if not w.done():
                w.cancel()
        for w in waiters[1:]:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await w
        if outcome == "done":
            return main.result()
        if not collect:
            # Retrieve its outcome whenever it comes, so none is left unobserved.
            main.add_done_callback(lambda t: t.cancelled() or t.exception())
            return "timeout" if outcome == "timeout" else "interrupted"
        with contextlib.suppress(asyncio.CancelledError, ActivityError):
            await main  # cancelled: collect it so nothing is left unobserved
        return "timeout" if outcome == "timeout" else "interrupted"

    # --- transitions -----------------------------------------------------------------
    def _transition(
        self, trigger: Trigger, note: str = "", *, trade: tuple[str, TradePnL] | None = None
    ) -> None:
        """Apply a transition from the table and publish it (search attributes, details,
        and a phase event for the JSONL log and the metrics)."""
        src_since = self.state.phase_since
        record = self.state.apply_transition(
            trigger,
            now=workflow.time(),
            note=note,
            history_limit=self.inp.params.phase_history_limit,
        )
        if self._v2 and trigger in SUCCESS_TRIGGERS:
            self.state.retry_count = 0  # the ERROR backoff starts over only after a success
        self._publish_phase()
        # Published on replay too, flagged: the log writes what a killed worker never did,
        # the metrics skip it. No command, so histories recorded before it still replay.
        self._publish_event(record, src_since, trade)

    def _publish_event(
        self, record: PhaseRecord, src_since: float, trade: tuple[str, TradePnL] | None
    ) -> None:
        s, info = self.state, workflow.info()
        SINK.publish(
            transition_event(
                s,
                record,
                src_since=src_since,
                trade=trade,
                simulated=self._is_simulated,
                workflow_id=info.workflow_id,
                run_id=info.run_id,
            ),
            replayed=workflow.unsafe.is_replaying(),
        )

    def _publish_phase(self) -> None:
        s = self.state
        workflow.upsert_search_attributes(
            [
                sa.TRADING_PHASE.value_set(s.phase.value),
                sa.PHASE_SINCE.value_set(datetime.fromtimestamp(s.phase_since, UTC)),
            ]
        )
        self._publish_details()
        self._publish_memo()

    def _publish_memo(self) -> None:
        """Prices, PnL and the last reason for ``starter.py status`` (one history event).

        Called on every transition (in the same workflow task as the search attributes), at
        the start of every run (memo does not survive continue-as-new) and on POSITION
        checkpoints, never on IDLE checkpoints: those would cost an event each for nothing.
        ``workflow.patched`` memoizes its answer per run, and its first call is always the
        one in ``run()``'s initial ``_publish_phase``: a run recorded without the patch
        replays without memo commands throughout, a new run records one marker and then
        upserts freely.
        """
        if workflow.patched(STATUS_MEMO_PATCH):
            workflow.upsert_memo(
                {c.STATUS_MEMO_KEY: status_memo(self.state, simulated=self._is_simulated)}
            )

    def _publish_details(self) -> None:
        # Current details cost no history events: refreshed on every checkpoint too.
        workflow.set_current_details(render_details(self.state, simulated=self._is_simulated))

    # --- side effects that must never block trading --------------------------------------
    def _notify(self, kind: str, text: str) -> None:
        """Send a notification in the background; failures are logged, never raised.

        The key comes from state (``notify_seq``, carried through continue-as-new): in
        history before the activity runs, so every attempt and re-run has the same one.
        Only the activity's input changes, not its command: old histories replay as they
        were (their notify inputs had no key)."""
        s = self.state
        s.notify_seq += 1
        key = ids.notification_key(workflow.info().workflow_id, s.lineage, s.notify_seq)
        handle = workflow.start_activity(
            c.NOTIFY,
            c.NOTIFY.input(symbol=s.symbol, kind=kind, text=text, key=key),
            start_to_close_timeout=NOTIFY_ATTEMPT,
            # Retried until it is sent or an hour has passed, not a number of attempts: a
            # burst (many symbols entering ERROR at once) gets 429s with retry_after of tens
            # of seconds, and the message must outlast them. Options are not part of the
            # command's identity: committed histories replay (tests/test_replay.py).
            schedule_to_close_timeout=NOTIFY_GIVE_UP,
            summary=f"notify {kind}",
        )
        self._background.append(handle)
        self._notifications.append(handle)  # the drain may give these up, never a release

    async def _drain_background(self) -> None:
        """Wait for background side effects (before continue-as-new or completion); a
        notification still being retried after NOTIFY_DRAIN is given up."""
        notes, self._notifications = self._notifications, []
        given_up: list[ActivityHandle[None]] = []
        if any(not t.done() for t in notes) and workflow.patched(BOUNDED_DRAIN_PATCH):
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(
                    lambda: all(t.done() for t in notes), timeout=NOTIFY_DRAIN
                )
            for t in notes:
                if not t.done():
                    workflow.logger.warning("notification not sent in time: given up")
                    t.cancel()
                    given_up.append(t)
        for task in self._background:
            try:
                await task
            except Exception as err:  # a failed notification or release never fails a trade
                if task not in given_up:  # (those were logged once, above)
                    workflow.logger.warning("background side effect failed: %s", error_message(err))
        self._background.clear()

    def _reap_background(self) -> None:
        """Forget finished background tasks (logging failures) without waiting."""
        pending = []
        for task in self._background:
            if not task.done():
                pending.append(task)
            elif task.exception() is not None:
                workflow.logger.warning(
                    "background side effect failed: %s", error_message(task.exception())
                )
        self._background = pending
        self._notifications = [t for t in self._notifications if not t.done()]

    def _release_slot(self) -> None:
        """Give the trade slot back (a signal: durable, idempotent on the decision id)."""
        if self.state.trade.decision_id:
            handle = workflow.get_external_workflow_handle(self.inp.portfolio_id)
            self._background.append(
                asyncio.ensure_future(handle.signal("release", self.state.trade.decision_id))
            )

    def _see(self, ticker: Ticker) -> None:
        """Remember the latest prices: ``last`` for display and rules, the bid for sells."""
        self.state.current_price, self.state.bid = ticker.last, ticker.bid

    async def _reconcile(
        self, *, client_order_id: str | None, expect: Decimal | None, summary: str
    ) -> c.ReconcileResult:
        """What the exchange says: the order (by client id, in the lists too), the base
        balance (read again for ``balance_settle_seconds`` while below ``expect``) and a
        fresh ticker."""
        s = self.state
        assert s.market is not None
        since_ms = int((s.trade.order.placed_ts - SINCE_SLACK_S) * 1000)
        rec = await self._exchange_call(
            c.RECONCILE,
            c.ReconcileInput(
                symbol=s.symbol,
                client_order_id=client_order_id,
                base=s.market.base,
                expect_base=expect,
                settle_seconds=self.inp.params.balance_settle_seconds,
                # The lists too, from the decision (the order is the trade's last one).
                lists_since_ms=since_ms if client_order_id else None,
                side=s.trade.order.side,
                simulated=s.simulated,
            ),
            summary=summary,
        )
        self._see(rec.ticker)
        return rec

    async def _record_inventory(self, move: InventoryMove) -> None:
        s = self.state
        s.ledger_seq += 1  # the id comes from state only: the same on a retry or replay
        await self._ledger_call(
            c.RECORD_INVENTORY,
            c.InventoryRecord.of(
                s, move, ts=workflow.time(), simulated=self._is_simulated, engine="fsm"
            ),
        )

    async def _record_dust(self, amount: Decimal, price: Decimal, reason: str) -> None:
        s = self.state
        await self._ledger_call(
            c.RECORD_DUST,
            c.DustRecord(
                dust_id=f"{s.trade.decision_id}:{s.order_seq}",
                symbol=s.symbol,
                exchange=s.exchange,
                amount=amount,
                price=price,
                reason=reason,
                ts=workflow.time(),
                simulated=self._is_simulated,
            ),
        )
