"""Entry side of the phase machine: WARMUP, IDLE, ENTRY_EVAL, PLACE_BUY, WAIT_FILL."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityHandle

with workflow.unsafe.imports_passed_through():
    from trader import contracts as c
    from trader.core import ids
    from trader.core.errors import REJECTION_TYPES, ErrorType
    from trader.core.fills import apply_fill, start_order
    from trader.core.inventory import join_inventory
    from trader.core.market import Order, OrderSide, OrderType, TimeInForce
    from trader.core.messages import fmt, format_entry
    from trader.core.params import BuyOrderMode
    from trader.core.phases import Trigger
    from trader.core.rules import (
        EntryReason,
        EntryRecheck,
        EntryWatchState,
        ExitReason,
        ExitRulesState,
        check_guards,
        exit_levels,
    )
    from trader.core.sizing import is_dust, size_buy
    from workflows.base import (
        LOCAL_ACTIVITY_FAILURES,
        SLOT_LOCAL_ATTEMPT,
        SLOT_LOCAL_PATCH,
        SLOT_LOCAL_QUEUED,
        SLOT_LOCAL_WAIT,
        SLOT_RETRY_PATCH,
        SLOT_WAIT_PATCH,
        error_message,
        error_type,
    )
    from workflows.holdings import Holdings

_RECHECK = {EntryRecheck.GUARDS: "the guards pass", EntryRecheck.SLOT: "a trade slot is free"}


class EntryPhases(Holdings):
    async def _warmup(self) -> None:
        p = self.inp.params
        try:
            res = await self._exchange_call(
                c.WARMUP,
                c.WarmupInput(symbol=self.state.symbol, backfill_minutes=p.backfill_minutes),
                summary=f"warmup {self.state.symbol}",
            )
        except ActivityError as err:
            if error_type(err) is ErrorType.BAD_SYMBOL:
                # Nothing is held yet: a wrong symbol is a configuration error, fail loudly.
                raise workflow_failure(err) from err
            self.state.last_error = error_message(err)
            self._transition(Trigger.FAILED, f"warmup failed: {self.state.last_error}")
            return
        s = self.state
        s.market = res.market
        self._see(res.ticker)
        s.simulated = res.simulated or not p.global_trading
        if not (p.use_drop_anchor and s.entry_watch.anchor > 0):
            s.entry_watch.anchor = max(res.backfill_high or res.ticker.last, res.ticker.last)
            s.entry_watch.anchor_ts = str(res.ticker.ts_ms)
        self._transition(Trigger.WARMED_UP, f"anchor {s.entry_watch.anchor}")

    def _idle_blocked(self) -> bool:
        s = self.state
        return (
            s.controls.entries_paused
            or s.controls.shutdown_requested
            or (self._v2 and s.controls.reconcile_requested is not None)
        )

    async def _idle(self) -> None:
        s, p = self.state, self.inp.params
        if s.controls.entries_paused:
            await workflow.wait_condition(
                lambda: not s.controls.entries_paused or s.controls.shutdown_requested
            )
            return
        if s.entry_watch.anchor <= 0 and not self._v2:
            s.entry_watch.anchor = s.current_price
        # (Since exchange-reality: an unset anchor is taken from the watch's first fresh
        # price, not from the last price this symbol saw, maybe a cooldown ago.)
        anchor_text = fmt(s.entry_watch.anchor) if s.entry_watch.anchor > 0 else "the next price"
        recheck = s.entry_watch.recheck if self._v2 else EntryRecheck.NONE
        watch = self._start_watch(
            c.WATCH_ENTRY,
            c.WatchEntryInput(
                symbol=s.symbol,
                params=p,
                state=s.entry_watch.model_copy(update={"recheck": recheck}),
                portfolio_id=self.inp.portfolio_id if recheck else "",
            ),
            summary=f"buy on a {fmt(p.drop_trigger_pct)}% drop "
            f"from {anchor_text}" + (f" once {_RECHECK[recheck]}" if recheck else ""),
        )
        res = await self._race(watch, until=self._idle_blocked, collect=not self._handback)
        if isinstance(res, str):  # interrupted (paused, stopping, asked to reconcile)
            if self._handback:
                await self._keep_entry_progress(watch)
            return
        self._take_entry_state(res)
        if not res.fired:
            self._publish_details()  # checkpoint: no transition, no extra history
            return
        s.decision_seq += 1
        s.trade.decision_id = ids.decision_id(s.symbol, s.lineage, s.decision_seq)
        s.trade.signal = EntryReason.DROP_TRIGGER
        assert res.ticker is not None  # a fired watch saw one
        self._entry = res
        self._transition(
            Trigger.SIGNAL,
            f"price {res.ticker.last} is {res.drop_pct:.2f}% below anchor {res.state.anchor}",
        )

    def _take_entry_state(self, res: c.WatchEntryResult) -> None:
        s = self.state
        # Before exchange-reality the recheck was not carried.
        update: dict[str, object] = {
            "recheck": res.state.recheck if self._v2 else s.entry_watch.recheck
        }
        if res.ticker is not None:  # None: handed back before a tick (the state still counts)
            self._see(res.ticker)
            update["anchor_ts"] = str(res.ticker.ts_ms)
        s.entry_watch = res.state.model_copy(update=update)
        if not self._v2:
            s.retry_count = 0

    async def _keep_entry_progress(self, watch: ActivityHandle[c.WatchEntryResult]) -> None:
        """The anchor and window the cancelled watch reached (WATCH_HANDBACK_PATCH): handed
        back, or its last heartbeat's; else the last checkpoint's stay. A drop that fired
        just as the cancel came is not bought: a pause or a stop forbids it, and after a
        reconcile the next watch starts from the kept anchor and window, so it fires again
        on its first tick if the drop still holds (and the guards run on that price)."""
        res, last = await self._handed_back(watch, c.WATCH_ENTRY, lambda: False)
        if res is not None:
            self._take_entry_state(res)
        elif last is not None:
            seen = EntryWatchState.model_validate(last)
            if not self._v2:
                seen.recheck = self.state.entry_watch.recheck
            self.state.entry_watch = seen
        self._publish_details()  # what a stopped symbol shows (no history event)

    async def _entry_eval(self) -> None:
        s, p, res = self.state, self.inp.params, self._entry
        if res is None:  # only after a restart mid-evaluation: re-watch rather than guess
            self._abandon_entry(Trigger.GUARDS_BLOCKED, "entry snapshot lost; re-evaluating")
            return
        assert res.ticker is not None  # only a fired watch's result is kept
        guards = check_guards(res.ticker, p, sma=res.sma)
        if not guards.passed:
            self._abandon_entry(
                Trigger.GUARDS_BLOCKED, guards.detail, keep_drop=EntryRecheck.GUARDS
            )
            return
        grant = await self._acquire_slot(
            c.AcquireSlotInput(
                portfolio_id=self.inp.portfolio_id,
                max_trades=p.max_trades,
                request=c.SlotRequest(decision_id=s.trade.decision_id or "", symbol=s.symbol),
            )
        )
        if grant is None:  # stopped or paused while waiting: the request may still be
            # granted, so the decision is released (the Portfolio refuses it from then on)
            why = "stopping" if s.controls.shutdown_requested else "entries paused"
            self._abandon_entry(Trigger.NO_SLOT, f"{why} while waiting for a trade slot")
            return
        if not grant.granted:
            self._abandon_entry(
                Trigger.NO_SLOT,
                f"all {grant.max_trades} trade slots in use",
                release=False,
                keep_drop=EntryRecheck.SLOT,
            )
            return
        s.entry_watch.recheck = EntryRecheck.NONE
        self._transition(Trigger.GUARDS_PASSED, f"slot {grant.in_use}/{grant.max_trades}")

    async def _acquire_slot(self, inp: c.AcquireSlotInput) -> c.SlotGrant | None:
        """A slot from the Portfolio, or None when a stop or a pause came first.

        It never gives up (the grant is idempotent on the decision id): a refused or
        aborted Update is the server's limit or the Portfolio's continue-as-new, no reason
        for ERROR. Before the slot-retry patch: FSM_MAX_RETRIES attempts. Before the
        slot-wait patch: on the main task queue, and not interruptible. Since the
        slot-local patch a local attempt goes first (``SLOT_LOCAL_ATTEMPT``)."""
        if not workflow.patched(SLOT_RETRY_PATCH):
            return await self._exchange_call(c.ACQUIRE_SLOT, inp, summary="acquire trade slot")
        controls = self.state.controls

        def interrupted() -> bool:
            return controls.shutdown_requested or controls.entries_paused

        if workflow.patched(SLOT_LOCAL_PATCH):
            if interrupted():
                return None  # came with the watch's result: abandoned, nothing asked
            local = await self._acquire_slot_locally(inp)
            if interrupted():
                return None  # came with the local attempt's end: abandoned (released)
            if local is not None:
                return local
        interruptible = workflow.patched(SLOT_WAIT_PATCH)
        handle = workflow.start_activity(
            c.ACQUIRE_SLOT,
            inp,
            result_type=c.ACQUIRE_SLOT.result,
            # A queue of its own: orders on the main queue never wait behind slot requests.
            task_queue=c.slot_task_queue(self.inp.watch_task_queue) if interruptible else None,
            start_to_close_timeout=timedelta(
                seconds=self.inp.params.order_activity_timeout_seconds
            ),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
            summary="acquire trade slot",
        )
        if not interruptible:
            grant: c.SlotGrant = await handle
            return grant
        res = await self._race(handle, until=interrupted)
        return None if isinstance(res, str) else res

    async def _acquire_slot_locally(self, inp: c.AcquireSlotInput) -> c.SlotGrant | None:
        """One local attempt (in this worker, through its broker), or None if it failed or
        found no answer in time. A worker that dies during it leaves no marker: the next
        worker asks again, and the grant is idempotent on the decision id."""
        return await local_slot_attempt(inp)

    def _abandon_entry(
        self,
        trigger: Trigger,
        note: str,
        *,
        release: bool = True,
        keep_drop: EntryRecheck = EntryRecheck.NONE,
    ) -> None:
        """Back to IDLE without a trade.

        A rejected or unfilled buy restarts the anchor at the current price: the next entry
        needs a fresh drop, so the same drop never re-fires a failing entry in a loop. A drop
        blocked by a guard or a full portfolio (``keep_drop``) is not thrown away: the anchor
        stays, and the next watch fires as soon as the drop still holds *and* the guards pass
        (or a slot is free), checked on every tick: one blocked attempt in the history, no
        loop (before the exchange-reality patch such a drop was dropped too).
        """
        s = self.state
        if release:
            self._release_slot()
        s.clear_trade()
        if self._v2 and keep_drop:
            s.entry_watch.recheck = keep_drop
            note = f"{note}; the drop stands: entering once {_RECHECK[keep_drop]}"
        else:
            s.entry_watch.anchor = s.current_price
            s.entry_watch.window = []
        self._entry = None
        self._transition(trigger, note)

    async def _place_buy(self) -> None:
        s, p, market = self.state, self.inp.params, self.state.market
        assert market is not None and self._entry is not None and self._entry.ticker is not None
        ask = self._entry.ticker.ask
        sizing = size_buy(p.budget_for(market.quote), ask, market)
        if not sizing.ok:
            self._abandon_entry(Trigger.ORDER_REJECTED, sizing.reason)
            return
        s.order_seq += 1
        coid = ids.client_order_id(workflow.info().workflow_id, s.lineage, s.order_seq)
        start_order(
            s, client_order_id=coid, side=OrderSide.BUY, amount=sizing.amount, now=workflow.time()
        )
        market_order = p.buy_order_mode is BuyOrderMode.MARKET
        order_input = c.PlaceOrderInput(
            symbol=s.symbol,
            side=OrderSide.BUY,
            amount=sizing.amount,
            client_order_id=coid,
            type=OrderType.MARKET if market_order else OrderType.LIMIT,
            time_in_force=TimeInForce.GTC
            if p.buy_order_mode is BuyOrderMode.GTC
            else TimeInForce.IOC,
            limit_offset_bps=None if market_order else p.buy_limit_offset_bps,
            simulated=s.simulated,
        )
        try:
            order = await self._exchange_call(
                c.PLACE_ORDER,
                order_input,
                summary=f"place_buy {s.symbol} {fmt(sizing.amount)} @ ~{fmt(ask)} "
                f"{p.buy_order_mode.value.upper()}",
            )
        except ActivityError as err:
            s.last_error = error_message(err)
            if error_type(err) in REJECTION_TYPES:
                self._abandon_entry(Trigger.ORDER_REJECTED, f"buy rejected: {s.last_error}")
            else:  # outcome unknown: ERROR reconciles by the client order id
                self._transition(Trigger.FAILED, f"buy failed: {s.last_error}")
            return
        s.trade.order.order_id = order.id
        self._last_order = order
        self._transition(Trigger.ORDER_PLACED, f"buy {order.amount} @ {order.price or 'market'}")

    async def _wait_fill(self) -> None:
        s = self.state
        order = await self._settle_order(
            self.inp.params.buy_order_timeout_seconds,
            until=lambda: s.trade.force_exit_reason is not None,
        )
        apply_fill(s, order)
        assert s.market is not None
        if self._v2:
            await self._settle_buy(order)
            return
        dust = s.trade.amount > 0 and is_dust(
            s.trade.amount, order.average or s.current_price, s.market
        )
        if s.trade.force_exit_reason is not None and s.trade.amount > 0 and not dust:
            s.trade.exit_reason = ExitReason.FORCE_EXIT
            self._transition(
                Trigger.FORCE_EXIT, f"force exit during buy: {s.trade.force_exit_reason}"
            )
        elif s.trade.amount > 0 and not dust:
            self._enter_position(order)
        else:
            if dust:
                await self._record_dust(
                    s.trade.amount, order.average or s.current_price, "buy dust"
                )
            trigger = (
                Trigger.CANCELLED if s.trade.force_exit_reason is not None else Trigger.TIMEOUT
            )
            self._abandon_entry(
                trigger, "buy not filled" if not dust else f"buy filled only dust {s.trade.amount}"
            )

    async def _settle_buy(self, order: Order) -> None:
        """The buy is final: the position (with any inventory joined), a force exit, or, if
        nothing sellable was bought, a trade closed with everything carried as inventory."""
        s = self.state
        assert s.market is not None
        if s.trade.amount > 0:
            join_inventory(s)  # together they may be sellable where each alone is not
        dust = s.trade.amount > 0 and is_dust(s.trade.amount, s.bid or s.current_price, s.market)
        if s.trade.amount > 0 and not dust:
            if s.trade.force_exit_reason is not None:
                s.trade.exit_reason = ExitReason.FORCE_EXIT
                self._transition(
                    Trigger.FORCE_EXIT, f"force exit during buy: {s.trade.force_exit_reason}"
                )
            else:
                self._enter_position(order)
            return
        if dust:  # on the books, never dropped: carried with its cost and fee
            await self._book_unsellable()
        trigger = Trigger.CANCELLED if s.trade.force_exit_reason is not None else Trigger.TIMEOUT
        self._abandon_entry(
            trigger,
            "buy not filled"
            if not dust
            else f"buy filled only {s.trade.amount}, below the market minimum: carried as "
            "inventory",
        )

    def _enter_position(self, order: Order) -> None:
        s, p = self.state, self.inp.params
        s.trade.entry_ts = workflow.time()
        s.trade.exits = ExitRulesState.opened(s.trade.entry_price)
        s.trade.tp_px, s.trade.sl_px = exit_levels(s.trade.entry_price, p)
        s.current_price = s.trade.entry_price
        trigger = Trigger.FILLED if order.filled >= order.amount else Trigger.PARTIAL_TIMEOUT
        joined = (
            f" (with {s.trade.inventory_in_amount} inventory)"
            if s.trade.inventory_in_amount
            else ""
        )
        self._transition(trigger, f"bought {s.trade.amount} @ {s.trade.entry_price}{joined}")
        self._notify(
            "entry",
            format_entry(
                symbol=s.symbol,
                amount=s.trade.amount,
                price=s.trade.entry_price,
                cost=s.trade.entry_cost,
                simulated=self._is_simulated,
            ),
        )


async def local_slot_attempt(inp: c.AcquireSlotInput) -> c.SlotGrant | None:
    """The slot-local patch's local ``acquire_slot`` (tests/workflows/slot_client.py asks
    the same way), or None if it failed or found no answer in time."""
    # The deadline on the workflow's clock (the server's, as the Portfolio's), not the
    # worker's: a worker clock behind would have every local request refused expired.
    expires = workflow.now() + SLOT_LOCAL_WAIT
    request = inp.request.model_copy(update={"expires_at": expires.timestamp()})
    try:
        grant: c.SlotGrant = await workflow.execute_local_activity(
            c.ACQUIRE_SLOT,
            inp.model_copy(update={"request": request}),
            result_type=c.ACQUIRE_SLOT.result,
            start_to_close_timeout=SLOT_LOCAL_ATTEMPT,
            schedule_to_start_timeout=SLOT_LOCAL_QUEUED,
            retry_policy=RetryPolicy(maximum_attempts=1),
            summary="acquire trade slot",
        )
    except LOCAL_ACTIVITY_FAILURES as err:
        workflow.logger.info("local slot attempt failed, asking on the slot queue: %s", err)
        return None
    return grant


def workflow_failure(err: ActivityError) -> Exception:
    return ApplicationError(
        f"cannot trade: {error_message(err)}", type=ErrorType.BAD_SYMBOL.value, non_retryable=True
    )
