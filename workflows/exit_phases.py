"""Exit side of the phase machine: POSITION, EXIT_EVAL, PLACE_SELL, WAIT_SELL_FILL,
POST_TRADE, COOLDOWN."""

from __future__ import annotations

from decimal import Decimal

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from trader import contracts as c
    from trader.core import ids
    from trader.core.fills import apply_fill, sell_done, start_order
    from trader.core.market import Order, OrderSide, OrderType, TimeInForce
    from trader.core.messages import fmt, format_exit
    from trader.core.phases import Trigger
    from trader.core.pnl import realized_pnl
    from trader.core.rules import ExitReason, TrailingState, evaluate_exit
    from trader.core.sizing import is_dust, sellable_amount
    from workflows.base import TraderBase, error_message, error_type


class ExitPhases(TraderBase):
    def _exit_requested(self) -> bool:
        s = self.state
        return s.force_exit_reason is not None or (s.shutdown_requested and s.close_on_shutdown)

    def _take_force_exit(self) -> None:
        s = self.state
        reason = s.force_exit_reason or "shutdown"
        s.exit_reason = ExitReason.FORCE_EXIT.value if s.force_exit_reason \
            else ExitReason.SHUTDOWN.value
        self._transition(Trigger.FORCE_EXIT, f"force exit: {reason}")

    async def _position(self) -> None:
        s, p = self.state, self.inp.params
        if self._exit_requested():
            self._take_force_exit()
            return
        hold_left = None
        if p.max_hold_minutes > 0:
            hold_left = max(s.entry_ts + float(p.max_hold_minutes) * 60 - workflow.time(), 0.001)
        watch = self._start_watch(c.WATCH_EXIT, c.WatchExitInput(
            symbol=s.symbol, params=p, entry_price=s.entry_price, entry_ts=s.entry_ts,
            peak=s.peak_price, trailing_trigger=s.trailing_trigger,
        ), c.WatchExitResult, summary=f"holding {fmt(s.remaining)} from "
                                      f"{fmt(s.entry_price)}, TP {fmt(s.tp_px)}"
                                      f" / SL {fmt(s.sl_px)}")
        outcome, res = await self._race(
            watch, until=lambda: self._exit_requested() or s.shutdown_requested,
            timeout=hold_left)
        if outcome == "timeout":
            self._max_hold_due = True
            self._transition(Trigger.EXIT_CHECK, "max hold time reached")
        elif outcome == "done":
            s.current_price, s.peak_price = res.ticker.last, res.peak
            s.trailing_trigger = res.trailing_trigger
            s.retry_count = 0
            if res.fired:
                self._transition(Trigger.EXIT_CHECK, res.detail)
            else:  # checkpoint: keep price and PnL fresh in `status` while holding
                self._publish_details()
                self._publish_memo()

    async def _exit_eval(self) -> None:
        s, p = self.state, self.inp.params
        if self._exit_requested():
            self._take_force_exit()
            return
        decision = evaluate_exit(
            price=s.current_price, entry_price=s.entry_price,
            trailing=TrailingState(peak=s.peak_price, trigger=s.trailing_trigger),
            entry_ts=s.entry_ts, now=workflow.time(), params=p,
        )
        if decision.exit and decision.reason is not None:
            s.exit_reason = decision.reason.value
            self._transition(Trigger.EXIT_TRIGGERED, decision.detail)
        elif self._max_hold_due:
            s.exit_reason = ExitReason.MAX_HOLD.value
            self._transition(Trigger.EXIT_TRIGGERED, "max hold time reached")
        elif s.exit_reason:  # a sell could not be placed: the exit still stands, retry it
            self._transition(Trigger.EXIT_TRIGGERED, f"retrying {s.exit_reason} sell")
        else:
            self._transition(Trigger.HOLD, decision.detail)
        self._max_hold_due = False

    async def _place_sell(self) -> None:
        s, p, market = self.state, self.inp.params, self.state.market
        assert market is not None
        amount = sellable_amount(s.remaining, market)
        if is_dust(amount, s.current_price, market):
            if s.sold_amount == 0:  # can't happen for a position worth opening; never loop
                s.last_error = f"position {s.remaining} is below the market minimum"
            self._transition(Trigger.DUST_REMAINDER, f"remaining {s.remaining} is dust")
            return
        s.order_seq += 1
        coid = ids.client_order_id(workflow.info().workflow_id, s.lineage, s.order_seq)
        start_order(s, client_order_id=coid, side=OrderSide.SELL, amount=amount,
                    now=workflow.time())
        ladder = p.sell_ladder_bps
        on_ladder = s.sell_attempt < len(ladder)
        order_input = c.PlaceOrderInput(
            symbol=s.symbol, side=OrderSide.SELL, amount=amount, client_order_id=coid,
            type=OrderType.LIMIT if on_ladder else OrderType.MARKET,
            time_in_force=TimeInForce.IOC,
            limit_offset_bps=ladder[s.sell_attempt] if on_ladder else None,
        )
        step = f"IOC -{ladder[s.sell_attempt]}bps" if on_ladder else "market"
        try:
            order = await self._exchange_call(
                c.PLACE_ORDER, order_input, Order,
                summary=f"place_sell {s.symbol} {fmt(amount)} @ "
                        f"~{fmt(s.current_price)} {step} ({s.exit_reason})")
        except ActivityError as err:
            s.last_error = error_message(err)
            s.retry_count += 1
            s.sell_attempt += 1
            if error_type(err) == "InvalidOrder" and s.retry_count <= p.fsm_max_retries:
                self._transition(Trigger.ORDER_REJECTED, f"sell rejected: {s.last_error}")
            else:  # funds missing, or unknown outcome: reconcile with the exchange
                self._transition(Trigger.FAILED, f"sell failed: {s.last_error}")
            return
        s.order_id = order.id
        self._last_order = order
        self._transition(Trigger.ORDER_PLACED, f"sell {order.amount} @ {order.price or 'market'}")

    async def _wait_sell_fill(self) -> None:
        s, p = self.state, self.inp.params
        assert s.market is not None
        order = await self._settle_order(p.sell_order_timeout_seconds)
        filled = apply_fill(s, order)
        price = order.average or s.current_price
        if sell_done(s, s.market, price, p.sell_fill_threshold):
            self._transition(Trigger.FILLED, f"sold {s.sold_amount}/{s.amount}")
            return
        s.sell_attempt += 1
        if filled > 0:
            self._transition(Trigger.PARTIAL_FILL, f"sold {s.sold_amount}/{s.amount}; "
                                                   "selling the rest")
        else:
            self._transition(Trigger.TIMEOUT, "sell not filled; next ladder step")

    async def _post_trade(self) -> None:
        s, p = self.state, self.inp.params
        pnl = realized_pnl(
            bought_amount=s.amount, entry_cost=s.entry_cost, entry_fee=s.entry_fee,
            sold_amount=s.sold_amount, exit_proceeds=s.exit_proceeds, exit_fee=s.exit_fee)
        now = workflow.time()
        trade_id = s.decision_id or f"{s.symbol}:{s.lineage}:orphan{s.order_seq}"
        await self._ledger_call(c.RECORD_TRADE, c.TradeRecord(
            trade_id=trade_id,
            symbol=s.symbol, exchange=s.exchange, exit_reason=s.exit_reason or "unknown",
            bought_amount=s.amount, sold_amount=s.sold_amount, entry_price=s.entry_price,
            entry_cost=s.entry_cost, entry_fee=s.entry_fee, exit_proceeds=s.exit_proceeds,
            exit_fee=s.exit_fee, net_pnl=pnl.net, pnl_pct=pnl.pct, opened_ts=s.entry_ts,
            closed_ts=now, simulated=self._is_simulated))
        if s.remaining > 0:
            await self._record_dust(s.remaining, s.current_price, "left after sell")
        self._release_slot()
        self._notify("exit", format_exit(symbol=s.symbol, pnl=pnl, reason=s.exit_reason,
                                         simulated=self._is_simulated))
        s.realized_pnl_total += pnl.net
        s.fees_total += pnl.fees
        s.last_trade_pnl = pnl.net
        s.trades_closed += 1
        s.cooldown_until = now + float(p.cooldown_minutes) * 60
        reason = s.exit_reason
        s.clear_trade()
        s.retry_count = 0
        self._transition(Trigger.RECORDED, f"{reason}: net {pnl.net:.8f} ({pnl.pct:+.3f}%)",
                         trade=(trade_id, pnl))

    async def _cooldown(self) -> None:
        s = self.state
        left = s.cooldown_until - workflow.time()
        if left > 0:
            try:
                await workflow.wait_condition(lambda: s.shutdown_requested, timeout=left)
                return  # shutting down; the loop stops here (COOLDOWN is quiet)
            except TimeoutError:
                pass
        s.anchor_price = Decimal(0)  # a fresh anchor for the next entry
        self._window = []
        self._transition(Trigger.EXPIRED, "cooldown over")
