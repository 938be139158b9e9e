"""Phase handlers as they were before the ``exchange-reality`` patch, kept verbatim so that
runs recorded before it replay with the same commands (tests/histories).

A run takes these paths only when ``workflow.patched(EXCHANGE_REALITY_PATCH)`` was False
at its start, i.e. it began under the older code (``BEFORE_REALITY_HANDLERS`` in
workflows/symbol_trader.py names the phases they replace); it moves to the current
handlers at its next continue-as-new (or a stop and start). Do not change their commands;
delete them once no such run can exist (every live run has continued-as-new since the
release).
"""

from __future__ import annotations

from decimal import Decimal

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from trader import contracts as c
    from trader.core import ids
    from trader.core.errors import ErrorType
    from trader.core.fills import apply_fill, recovery_trigger, sell_done, start_order
    from trader.core.market import OrderSide, OrderType, TimeInForce
    from trader.core.messages import fmt, format_exit
    from trader.core.phases import Trigger
    from trader.core.pnl import realized_pnl
    from trader.core.rules import ExitRulesState, exit_levels
    from trader.core.sizing import is_dust, sellable_amount
    from workflows.base import TraderBase, error_message, error_type


class BeforeReality(TraderBase):
    async def _place_sell_v1(self) -> None:
        s, p, market = self.state, self.inp.params, self.state.market
        assert market is not None
        amount = sellable_amount(s.remaining, market)
        if is_dust(amount, s.current_price, market):
            if s.trade.sold_amount == 0:  # can't happen for a position worth opening; never loop
                s.last_error = f"position {s.remaining} is below the market minimum"
            self._transition(Trigger.DUST_REMAINDER, f"remaining {s.remaining} is dust")
            return
        s.order_seq += 1
        coid = ids.client_order_id(workflow.info().workflow_id, s.lineage, s.order_seq)
        start_order(
            s, client_order_id=coid, side=OrderSide.SELL, amount=amount, now=workflow.time()
        )
        ladder = p.sell_ladder_bps
        on_ladder = s.trade.sell_attempt < len(ladder)
        order_input = c.PlaceOrderInput(
            symbol=s.symbol,
            side=OrderSide.SELL,
            amount=amount,
            client_order_id=coid,
            type=OrderType.LIMIT if on_ladder else OrderType.MARKET,
            time_in_force=TimeInForce.IOC,
            limit_offset_bps=ladder[s.trade.sell_attempt] if on_ladder else None,
            simulated=s.simulated,
        )
        step = f"IOC -{ladder[s.trade.sell_attempt]}bps" if on_ladder else "market"
        try:
            order = await self._exchange_call(
                c.PLACE_ORDER,
                order_input,
                summary=f"place_sell {s.symbol} {fmt(amount)} @ "
                f"~{fmt(s.current_price)} {step} ({s.trade.exit_reason or ''})",
            )
        except ActivityError as err:
            s.last_error = error_message(err)
            s.retry_count += 1
            s.trade.sell_attempt += 1
            if error_type(err) is ErrorType.INVALID_ORDER and s.retry_count <= p.fsm_max_retries:
                self._transition(Trigger.ORDER_REJECTED, f"sell rejected: {s.last_error}")
            else:  # funds missing, or unknown outcome: reconcile with the exchange
                self._transition(Trigger.FAILED, f"sell failed: {s.last_error}")
            return
        s.trade.order.order_id = order.id
        self._last_order = order
        self._transition(Trigger.ORDER_PLACED, f"sell {order.amount} @ {order.price or 'market'}")

    async def _wait_sell_fill_v1(self) -> None:
        s, p = self.state, self.inp.params
        assert s.market is not None
        order = await self._settle_order(p.sell_order_timeout_seconds)
        filled = apply_fill(s, order)
        price = order.average or s.current_price
        self._sell_settled(sell_done(s, s.market, price, p.sell_fill_threshold), filled)

    def _sell_settled(self, done: bool, filled: Decimal) -> None:
        """WAIT_SELL_FILL's way out (both versions): done, or the next ladder step."""
        s = self.state
        if done:
            self._transition(Trigger.FILLED, f"sold {s.trade.sold_amount}/{s.trade.amount}")
            return
        s.trade.sell_attempt += 1
        if filled > 0:
            self._transition(
                Trigger.PARTIAL_FILL,
                f"sold {s.trade.sold_amount}/{s.trade.amount}; selling the rest",
            )
        else:
            self._transition(Trigger.TIMEOUT, "sell not filled; next ladder step")

    async def _post_trade_v1(self) -> None:
        s, p = self.state, self.inp.params
        pnl = realized_pnl(
            bought_amount=s.trade.amount,
            entry_cost=s.trade.entry_cost,
            entry_fee=s.trade.entry_fee,
            sold_amount=s.trade.sold_amount,
            exit_proceeds=s.trade.exit_proceeds,
            exit_fee=s.trade.exit_fee,
        )
        now = workflow.time()
        trade_id = s.trade.decision_id or f"{s.symbol}:{s.lineage}:orphan{s.order_seq}"
        await self._ledger_call(
            c.RECORD_TRADE,
            c.TradeRecord(
                trade_id=trade_id,
                symbol=s.symbol,
                exchange=s.exchange,
                exit_reason=s.trade.exit_reason or "unknown",
                bought_amount=s.trade.amount,
                sold_amount=s.trade.sold_amount,
                entry_price=s.trade.entry_price,
                entry_cost=s.trade.entry_cost,
                entry_fee=s.trade.entry_fee,
                exit_proceeds=s.trade.exit_proceeds,
                exit_fee=s.trade.exit_fee,
                net_pnl=pnl.net,
                pnl_pct=pnl.pct,
                opened_ts=s.trade.entry_ts,
                closed_ts=now,
                simulated=self._is_simulated,
            ),
        )
        if s.remaining > 0:
            await self._record_dust(s.remaining, s.current_price, "left after sell")
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
        s.totals.realized_pnl += pnl.net
        s.totals.fees += pnl.fees
        s.totals.last_trade_pnl = pnl.net
        s.totals.trades_closed += 1
        s.cooldown_until = now + float(p.cooldown_minutes) * 60
        reason = s.trade.exit_reason or ""  # unset: "" in the note, as before
        s.clear_trade()
        s.retry_count = 0
        self._transition(
            Trigger.RECORDED,
            f"{reason}: net {pnl.net:.8f} ({pnl.pct:+.3f}%)",
            trade=(trade_id, pnl),
        )

    async def _error_v1(self) -> None:
        s = self.state
        s.error_count += 1
        s.retry_count += 1
        self._notify("error", f"{s.symbol} in ERROR: {s.last_error}")
        await workflow.sleep(self.backoff_seconds())
        if s.market is None:  # failed during warm-up: nothing can be held yet
            self._transition(Trigger.RETRY_WARMUP, "retrying warm-up")
            return
        try:
            rec = await self._exchange_call(
                c.RECONCILE,
                c.ReconcileInput(
                    symbol=s.symbol,
                    client_order_id=s.trade.order.client_order_id,
                    base=s.market.base,
                    simulated=s.simulated,
                ),
                summary=f"reconcile {s.symbol}",
            )
        except ActivityError as err:
            s.last_error = error_message(err)
            self._transition(Trigger.FAILED, f"reconcile failed: {s.last_error}")
            return
        s.current_price = rec.ticker.last
        trigger = recovery_trigger(
            s, rec.order, s.market, rec.ticker.last, self.inp.params.sell_fill_threshold
        )
        note = f"reconciled: {trigger.value}"
        if trigger is Trigger.RECOVERED_FLAT:
            if s.trade.amount > 0:  # only dust was bought
                await self._record_dust(s.trade.amount, rec.ticker.last, "buy dust (recovered)")
            self._release_slot()
            s.clear_trade()
        elif trigger is Trigger.RECOVERED_POSITION and s.trade.entry_ts == 0:
            s.trade.entry_ts = workflow.time()  # the buy filled while we were down
            s.trade.exits = ExitRulesState.opened(s.trade.entry_price)
            s.trade.tp_px, s.trade.sl_px = exit_levels(s.trade.entry_price, self.inp.params)
        elif trigger in (Trigger.RECOVERED_BUY_OPEN, Trigger.RECOVERED_SELL_OPEN):
            self._last_order = rec.order
        self._transition(trigger, note)
