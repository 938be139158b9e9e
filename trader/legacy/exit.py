"""The legacy engine's exit phases: POSITION, EXIT_EVAL, PLACE_SELL, WAIT_SELL_FILL,
POST_TRADE, COOLDOWN (the decisions of ``workflows/exit_phases.py``)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from trader.core import ids
from trader.core.fills import apply_fill, start_order
from trader.core.inventory import write_off_position
from trader.core.market import OrderRequest, OrderSide, OrderType
from trader.core.market import TimeInForce as Tif
from trader.core.messages import format_exit
from trader.core.phases import Trigger
from trader.core.rules import (
    EntryRecheck,
    ExitReason,
    evaluate_exit,
    update_exit_rules,
)
from trader.core.selling import exit_complete, plan_sell
from trader.legacy.controls import ControlPhases, save_every_s
from trader.legacy.orders import retrying


class ExitPhases(ControlPhases):
    # --- exit ------------------------------------------------------------------------------
    async def position(self) -> None:
        s, p = self.s, self.p
        if self.exit_requested():
            self.take_force_exit()
            return
        if s.trade.exit_reason:  # decided before (its sell failed, then ERROR): it stands
            self.transition(Trigger.EXIT_CHECK, f"standing exit: {s.trade.exit_reason}")
            return
        hold_left = None
        if p.max_hold_minutes > 0:
            hold_left = max(s.trade.entry_ts + float(p.max_hold_minutes) * 60 - time.time(), 0.001)
        try:
            detail = await asyncio.wait_for(self._watch_exit(), timeout=hold_left)
        except TimeoutError:
            self._max_hold_due = True
            detail = "max hold time reached"
        if detail is None:  # interrupted (stopping, asked to reconcile): still POSITION
            self.save()
            return
        self.transition(Trigger.EXIT_CHECK, detail)

    async def _watch_exit(self) -> str | None:
        s, p = self.s, self.p
        checkpoint = time.monotonic() + save_every_s(p)
        async with self.e.hub.subscription(s.symbol) as stream:
            async for ticker in stream:
                self.see(ticker)
                s.trade.exits = update_exit_rules(
                    s.trade.exits, ticker.last, s.trade.entry_price, p
                )
                decision = evaluate_exit(
                    price=ticker.last,
                    entry_price=s.trade.entry_price,
                    rules=s.trade.exits,
                    entry_ts=s.trade.entry_ts,
                    now=ticker.ts_ms / 1000,
                    params=p,
                )
                if decision.exit or self.exit_requested():
                    return decision.detail
                if self.position_interrupted():
                    return None
                if time.monotonic() >= checkpoint:
                    self.save()
                    checkpoint = time.monotonic() + save_every_s(p)
        raise RuntimeError("market stream ended")  # the hub's stream is endless

    async def exit_eval(self) -> None:
        s = self.s
        if self.exit_requested():
            self.take_force_exit()
            return
        decision = evaluate_exit(
            price=s.current_price,
            entry_price=s.trade.entry_price,
            rules=s.trade.exits,
            entry_ts=s.trade.entry_ts,
            now=time.time(),
            params=self.p,
        )
        if decision.exit and decision.reason is not None:
            s.trade.exit_reason = decision.reason
            self.transition(Trigger.EXIT_TRIGGERED, decision.detail)
        elif self._max_hold_due:
            s.trade.exit_reason = ExitReason.MAX_HOLD
            self.transition(Trigger.EXIT_TRIGGERED, "max hold time reached")
        elif s.trade.exit_reason:
            self.transition(Trigger.EXIT_TRIGGERED, f"retrying {s.trade.exit_reason} sell")
        else:
            self.transition(Trigger.HOLD, decision.detail)
        self._max_hold_due = False

    async def place_sell(self) -> None:
        s, p, market = self.s, self.p, self.s.market
        assert market is not None
        resumed = (
            bool(s.trade.order.client_order_id)
            and s.trade.order.order_id is None
            and s.trade.order.side is OrderSide.SELL
        )
        if not resumed:
            held = await self._balance(s.remaining)  # sell what the account really holds
            self.see(await retrying(p, lambda: self.e.hub.ticker(s.symbol)))
            left = s.trade.amount - s.trade.written_off
            plan = plan_sell(
                remaining=s.remaining,
                free=held.free,
                total=held.total,
                bid=s.bid,
                market=market,
                attempt=s.trade.sell_attempt,
                ladder=p.sell_ladder_bps,
                finish=left > 0 and s.trade.sold_amount >= left * p.sell_fill_threshold,
            )
            # What the account does not hold: closed at zero proceeds, a `shortfall` row.
            self._report(write_off_position(s, plan.gone, f"selling {s.trade.exit_reason or ''}"))
            if plan.blocked:
                s.last_error = f"sell blocked: {plan.detail}"
                self.transition(Trigger.FAILED, s.last_error)
                return
            if plan.amount <= 0:
                self.transition(Trigger.DUST_REMAINDER, f"nothing more to sell: {plan.detail}")
                return
            s.order_seq += 1
            coid = ids.client_order_id(self.wf_id, s.lineage, s.order_seq)
            start_order(
                s, client_order_id=coid, side=OrderSide.SELL, amount=plan.amount, now=time.time()
            )
            s.trade.order.limit_offset_bps = plan.offset_bps  # resent as planned
            s.trade.order.type = OrderType.MARKET if plan.offset_bps is None else OrderType.LIMIT
            self.save()  # committed before the order is sent
        offset, order_type = s.trade.order.limit_offset_bps, s.trade.order.type
        if order_type is None:  # saved before the plan was: the ladder step of this attempt
            ladder = p.sell_ladder_bps
            offset = ladder[s.trade.sell_attempt] if s.trade.sell_attempt < len(ladder) else None
            order_type = OrderType.MARKET if offset is None else OrderType.LIMIT
        request = OrderRequest(
            symbol=s.symbol,
            side=OrderSide.SELL,
            amount=s.trade.order.amount,
            client_order_id=s.trade.order.client_order_id or "",
            type=order_type,
            time_in_force=Tif.IOC,
        )
        order = await self._place(request, offset, resumed=resumed)
        if order is None:
            return
        s.trade.order.order_id = order.id
        s.trade.sell_rejections = 0
        self._last_order = order
        self.transition(Trigger.ORDER_PLACED, f"sell {order.amount} @ {order.price or 'market'}")

    async def wait_sell_fill(self) -> None:
        s = self.s
        assert s.market is not None
        order = await self._settle(self.p.sell_order_timeout_seconds)
        filled = apply_fill(s, order)
        if exit_complete(s.remaining, max(order.average or s.bid, s.bid), s.market):
            self.transition(Trigger.FILLED, f"sold {s.trade.sold_amount}/{s.trade.amount}")
            return
        s.trade.sell_attempt += 1
        if filled > 0:
            self.transition(
                Trigger.PARTIAL_FILL,
                f"sold {s.trade.sold_amount}/{s.trade.amount}; selling the rest",
            )
        else:
            self.transition(Trigger.TIMEOUT, "sell not filled; next ladder step")

    async def post_trade(self) -> None:
        s = self.s
        trade_id, pnl = self._book()
        self.notify(
            "exit",
            format_exit(
                symbol=s.symbol, pnl=pnl, reason=s.trade.exit_reason or "", simulated=s.simulated
            ),
        )
        s.cooldown_until = time.time() + float(self.p.cooldown_minutes) * 60
        reason = s.trade.exit_reason
        s.clear_trade()  # frees the trade slot
        self.transition(
            Trigger.RECORDED,
            f"{reason}: net {pnl.net:.8f} ({pnl.pct:+.3f}%)",
            trade=(trade_id, pnl),
        )

    async def cooldown(self) -> None:
        s = self.s
        await self.nap(max(s.cooldown_until - time.time(), 0), self.should_stop)
        if self.should_stop():
            return  # stopping: the run loop ends it here, still COOLDOWN
        if not self.p.use_drop_anchor:
            s.entry_watch.anchor = Decimal(0)
            s.entry_watch.window = []
        s.entry_watch.recheck = EntryRecheck.NONE
        self.transition(Trigger.EXPIRED, "cooldown over")
