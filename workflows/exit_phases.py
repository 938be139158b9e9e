"""Exit side of the phase machine: POSITION, EXIT_EVAL, PLACE_SELL, WAIT_SELL_FILL,
POST_TRADE, COOLDOWN."""

from __future__ import annotations

from decimal import Decimal

from temporalio import workflow
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityHandle

with workflow.unsafe.imports_passed_through():
    from trader import contracts as c
    from trader.core import ids
    from trader.core.controls import exit_requested, forced_exit
    from trader.core.errors import REJECTION_TYPES, ErrorType
    from trader.core.fills import apply_fill, start_order
    from trader.core.market import OrderSide, TimeInForce
    from trader.core.messages import fmt, format_exit
    from trader.core.phases import Trigger
    from trader.core.rules import EntryRecheck, ExitReason, ExitRulesState, evaluate_exit
    from trader.core.selling import exit_complete, plan_sell
    from workflows.base import error_message, error_type
    from workflows.before_reality import BeforeReality
    from workflows.holdings import Holdings


class ExitPhases(Holdings, BeforeReality):
    def _exit_requested(self) -> bool:
        return exit_requested(self.state)

    def _take_force_exit(self) -> None:
        self.state.trade.exit_reason, note = forced_exit(self.state)
        self._transition(Trigger.FORCE_EXIT, note)

    def _position_interrupted(self) -> bool:
        s = self.state
        return (
            self._exit_requested()
            or s.controls.shutdown_requested
            or (self._v2 and s.controls.reconcile_requested is not None)
        )

    async def _position(self) -> None:
        s, p = self.state, self.inp.params
        if self._exit_requested():
            self._take_force_exit()
            return
        if self._v2 and s.trade.exit_reason:
            # An exit was decided before (a stop-loss whose sell failed, then ERROR): it
            # stands, whatever the price did meanwhile. Re-arming the watch would hold on.
            self._transition(Trigger.EXIT_CHECK, f"standing exit: {s.trade.exit_reason}")
            return
        hold_left = None
        if p.max_hold_minutes > 0:
            hold_left = max(
                s.trade.entry_ts + float(p.max_hold_minutes) * 60 - workflow.time(), 0.001
            )
        watch = self._start_watch(
            c.WATCH_EXIT,
            c.WatchExitInput(
                symbol=s.symbol,
                params=p,
                entry_price=s.trade.entry_price,
                entry_ts=s.trade.entry_ts,
                state=s.trade.exits,
            ),
            summary=f"holding {fmt(s.remaining)} from "
            f"{fmt(s.trade.entry_price)}, TP {fmt(s.trade.tp_px)}"
            f" / SL {fmt(s.trade.sl_px)}",
        )
        res = await self._race(
            watch, until=self._position_interrupted, timeout=hold_left, collect=not self._handback
        )
        if res == "timeout":
            self._max_hold_due = True
            self._transition(Trigger.EXIT_CHECK, "max hold time reached")
        elif res == "interrupted" and self._handback:
            if self._exit_requested():  # a force exit needs no state
                watch.cancel()
            else:
                await self._keep_exit_progress(watch)
        elif not isinstance(res, str):
            self._take_exit_state(res)
            if res.fired:
                self._transition(Trigger.EXIT_CHECK, res.detail)
            else:  # checkpoint: keep price and PnL fresh in `status` while holding
                self._publish_details()
                self._publish_memo()

    def _take_exit_state(self, res: c.WatchExitResult) -> None:
        s = self.state
        if res.ticker is None:  # handed back before a tick: only the rule state is new
            pass
        elif self._v2:
            self._see(res.ticker)
        else:
            s.current_price = res.ticker.last
            s.retry_count = 0
        s.trade.exits = res.state

    async def _keep_exit_progress(self, watch: ActivityHandle[c.WatchExitResult]) -> None:
        """The trailing stop the cancelled watch reached (WATCH_HANDBACK_PATCH): handed
        back, or its last heartbeat's; else the last checkpoint's stays. A force exit
        arriving meanwhile ends the wait. An exit that fired as the cancel came (the watch
        returned its decision, not a handback) stands: it is sold after the reconcile (the
        standing-exit path of ``_position``), or when a stopped symbol resumes."""
        res, last = await self._handed_back(watch, c.WATCH_EXIT, self._exit_requested)
        if res is not None:
            self._take_exit_state(res)
            if res.fired and res.reason is not None:
                self.state.trade.exit_reason = res.reason
        elif last is not None:
            self.state.trade.exits = ExitRulesState.model_validate(last)
        else:
            return
        # The kept trailing level and price in status and the Web UI, also once stopped.
        self._publish_details()
        self._publish_memo()

    async def _exit_eval(self) -> None:
        s, p = self.state, self.inp.params
        if self._exit_requested():
            self._take_force_exit()
            return
        decision = evaluate_exit(
            price=s.current_price,
            entry_price=s.trade.entry_price,
            rules=s.trade.exits,
            entry_ts=s.trade.entry_ts,
            now=workflow.time(),
            params=p,
        )
        if decision.exit and decision.reason is not None:
            s.trade.exit_reason = decision.reason
            self._transition(Trigger.EXIT_TRIGGERED, decision.detail)
        elif self._max_hold_due:
            s.trade.exit_reason = ExitReason.MAX_HOLD
            self._transition(Trigger.EXIT_TRIGGERED, "max hold time reached")
        elif s.trade.exit_reason:  # a sell could not be placed: the exit still stands, retry it
            self._transition(Trigger.EXIT_TRIGGERED, f"retrying {s.trade.exit_reason} sell")
        else:
            self._transition(Trigger.HOLD, decision.detail)
        self._max_hold_due = False

    async def _place_sell(self) -> None:
        s, p, market = self.state, self.inp.params, self.state.market
        assert market is not None
        # Sell what the account really holds: ask it first (free and total base, the bid).
        rec = await self._reconcile(
            client_order_id=None, expect=s.remaining, summary=f"check {market.base} before selling"
        )
        free = rec.base_free if rec.base_free is not None else rec.base_balance
        left = s.trade.amount - s.trade.written_off
        plan = plan_sell(
            remaining=s.remaining,
            free=free,
            total=rec.base_balance,
            bid=s.bid,
            market=market,
            attempt=s.trade.sell_attempt,
            ladder=p.sell_ladder_bps,
            finish=left > 0 and s.trade.sold_amount >= left * p.sell_fill_threshold,
        )
        if plan.gone > 0:
            await self._write_off(plan.gone, f"selling {s.trade.exit_reason or ''}")
        if plan.blocked:  # sellable, but not now: the exit waits, backing off
            s.last_error = f"sell blocked: {plan.detail}"
            self._transition(Trigger.FAILED, s.last_error)
            return
        if plan.amount <= 0:
            self._transition(
                Trigger.DUST_REMAINDER,
                f"nothing more to sell: {plan.detail}; {fmt(s.remaining)} carried as inventory"
                if s.remaining > 0
                else "nothing left on the account to sell",
            )
            return
        s.order_seq += 1
        coid = ids.client_order_id(workflow.info().workflow_id, s.lineage, s.order_seq)
        start_order(
            s, client_order_id=coid, side=OrderSide.SELL, amount=plan.amount, now=workflow.time()
        )
        order_input = c.PlaceOrderInput(
            symbol=s.symbol,
            side=OrderSide.SELL,
            amount=plan.amount,
            client_order_id=coid,
            type=plan.order_type,
            time_in_force=TimeInForce.IOC,
            limit_offset_bps=plan.offset_bps,
            simulated=s.simulated,
        )
        try:
            order = await self._exchange_call(
                c.PLACE_ORDER,
                order_input,
                summary=f"place_sell {s.symbol} {fmt(plan.amount)} @ ~{fmt(s.bid)} "
                f"{plan.detail} ({s.trade.exit_reason or ''})",
            )
        except ActivityError as err:
            s.last_error = error_message(err)
            s.trade.sell_attempt += 1
            if error_type(err) in REJECTION_TYPES:
                s.trade.order.client_order_id = (
                    None  # refused: never placed, nothing to look up later
                )
            if (
                error_type(err) is ErrorType.INVALID_ORDER
                and s.trade.sell_rejections < p.fsm_max_retries
            ):
                s.trade.sell_rejections += 1
                self._transition(Trigger.ORDER_REJECTED, f"sell rejected: {s.last_error}")
            else:  # funds missing, or unknown outcome: reconcile with the exchange
                self._transition(Trigger.FAILED, f"sell failed: {s.last_error}")
            return
        s.trade.order.order_id = order.id
        self._last_order = order
        s.trade.sell_rejections = 0
        self._transition(Trigger.ORDER_PLACED, f"sell {order.amount} @ {order.price or 'market'}")

    async def _wait_sell_fill(self) -> None:
        s, p = self.state, self.inp.params
        assert s.market is not None
        order = await self._settle_order(p.sell_order_timeout_seconds)
        filled = apply_fill(s, order)
        # Done only when nothing sellable is left: past the 95 % threshold a tradeable
        # remainder is sold at market (PLACE_SELL), never orphaned.
        # Judged at the better of the fill price and the bid last seen: a remainder that may
        # be sellable goes back to PLACE_SELL, which decides on a fresh bid.
        price = max(order.average or s.bid, s.bid)
        self._sell_settled(exit_complete(s.remaining, price, s.market), filled)

    async def _post_trade(self) -> None:
        s, p = self.state, self.inp.params
        trade_id, pnl = await self._book_trade()
        self._release_slot()
        self._notify(
            "exit",
            format_exit(
                symbol=s.symbol,
                pnl=pnl,
                reason=s.trade.exit_reason or "",
                simulated=self._is_simulated,
            ),
        )
        s.cooldown_until = workflow.time() + float(p.cooldown_minutes) * 60
        reason = s.trade.exit_reason or ""  # unset: "" in the note, as before
        s.clear_trade()
        self._transition(
            Trigger.RECORDED,
            f"{reason}: net {pnl.net:.8f} ({pnl.pct:+.3f}%)",
            trade=(trade_id, pnl),
        )

    async def _cooldown(self) -> None:
        s = self.state
        left = s.cooldown_until - workflow.time()
        if left > 0:
            try:
                await workflow.wait_condition(lambda: s.controls.shutdown_requested, timeout=left)
                return  # shutting down; the loop stops here (COOLDOWN is quiet)
            except TimeoutError:
                pass
        if not (self._v2 and self.inp.params.use_drop_anchor):
            s.entry_watch.anchor = Decimal(0)  # a fresh anchor for the next entry
            s.entry_watch.window = []
        s.entry_watch.recheck = EntryRecheck.NONE
        self._transition(Trigger.EXPIRED, "cooldown over")
