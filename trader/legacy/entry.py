"""The legacy engine's entry phases: WARMUP, IDLE, ENTRY_EVAL, PLACE_BUY, WAIT_FILL (the
decisions of ``workflows/entry_phases.py``, by the same core functions)."""

from __future__ import annotations

import time
from decimal import Decimal

from trader.core import ids
from trader.core.errors import BadSymbol
from trader.core.fills import apply_fill, start_order
from trader.core.inventory import join_inventory
from trader.core.market import Order, OrderRequest, OrderSide, OrderType
from trader.core.market import TimeInForce as Tif
from trader.core.messages import format_entry
from trader.core.params import BuyOrderMode
from trader.core.phases import Trigger
from trader.core.rules import (
    EntryReason,
    EntryRecheck,
    EntryWatch,
    ExitReason,
    check_guards,
    sma_of,
)
from trader.core.sizing import is_dust, size_buy
from trader.legacy.controls import ControlPhases, save_every_s


class EntryPhases(ControlPhases):
    # --- entry -----------------------------------------------------------------------------
    async def warmup(self) -> None:
        s, p, ex = self.s, self.p, self.e.exchange
        markets = await ex.load_markets()
        if s.symbol not in markets:
            raise BadSymbol(f"unknown symbol {s.symbol!r} on {ex.name}")
        ticker = await self.e.hub.ticker(s.symbol)
        high = None
        if p.backfill_minutes > 0:
            candles = await ex.fetch_ohlcv(
                s.symbol,
                since_ms=ticker.ts_ms - p.backfill_minutes * 60_000,
                limit=p.backfill_minutes + 1,
            )
            high = max((k.high for k in candles), default=None)
        s.market, s.simulated = markets[s.symbol], ex.simulated or not p.global_trading
        self.see(ticker)
        if not (p.use_drop_anchor and s.entry_watch.anchor > 0):
            s.entry_watch.anchor = max(high or ticker.last, ticker.last)
            s.entry_watch.anchor_ts = str(ticker.ts_ms)
        self.transition(Trigger.WARMED_UP, f"anchor {s.entry_watch.anchor}")

    async def idle(self) -> None:
        s, p = self.s, self.p
        watch = EntryWatch(s.entry_watch, p)
        checkpoint = time.monotonic() + save_every_s(p)
        async with self.e.hub.subscription(s.symbol) as stream:
            async for ticker in stream:
                self.see(ticker)
                if self.idle_blocked():  # paused, stopping, asked to reconcile: no entry
                    s.entry_watch = watch.state().model_copy(
                        update={"anchor_ts": str(ticker.ts_ms)}
                    )
                    self.save()
                    return
                signal = watch.see(ticker.ts_ms, ticker.last)
                fired = signal.triggered
                if fired:
                    self._sma = await self._fetch_sma(ticker.ts_ms)
                    if watch.recheck:  # a blocked drop: fires once the block cleared
                        fired = check_guards(ticker, p, sma=self._sma).passed and (
                            watch.recheck is not EntryRecheck.SLOT or self.e.slots_free() > 0
                        )
                if fired:
                    break
                if time.monotonic() >= checkpoint:  # keep the saved anchor current
                    s.entry_watch = watch.state().model_copy(
                        update={"anchor_ts": str(ticker.ts_ms)}
                    )
                    self.save()
                    checkpoint = time.monotonic() + save_every_s(p)
        s.entry_watch = watch.state().model_copy(update={"anchor_ts": str(ticker.ts_ms)})
        s.decision_seq += 1
        s.trade.decision_id = ids.decision_id(s.symbol, s.lineage, s.decision_seq)
        s.trade.signal = EntryReason.DROP_TRIGGER
        self._ticker = ticker
        self.transition(
            Trigger.SIGNAL,
            f"price {ticker.last} is {signal.drop_pct:.2f}% below anchor {s.entry_watch.anchor}",
        )

    async def _fetch_sma(self, now_ms: int) -> Decimal | None:
        n = self.p.sma_guard_period
        if n <= 0:
            return None
        candles = await self.e.exchange.fetch_ohlcv(
            self.s.symbol, since_ms=now_ms - (n + 1) * 60_000, limit=n + 1
        )
        return sma_of([k.close for k in candles], n)

    async def entry_eval(self) -> None:
        if self._ticker is None:  # restarted mid-evaluation: re-watch rather than guess
            self.abandon_entry(Trigger.GUARDS_BLOCKED, "entry snapshot lost; re-evaluating")
            return
        guards = check_guards(self._ticker, self.p, sma=self._sma)
        if not guards.passed:
            self.abandon_entry(Trigger.GUARDS_BLOCKED, guards.detail, keep_drop=EntryRecheck.GUARDS)
            return
        # The slot count and this transition run without an await between them: no other
        # symbol of the engine can take the same slot.
        in_use = self.e.slots_in_use()
        if in_use >= self.p.max_trades:
            self.abandon_entry(
                Trigger.NO_SLOT,
                f"all {self.p.max_trades} trade slots in use",
                keep_drop=EntryRecheck.SLOT,
            )
            return
        self.s.entry_watch.recheck = EntryRecheck.NONE
        self.transition(Trigger.GUARDS_PASSED, f"slot {in_use + 1}/{self.p.max_trades}")

    async def place_buy(self) -> None:
        s, p, market = self.s, self.p, self.s.market
        assert market is not None
        resumed = bool(s.trade.order.client_order_id) and s.trade.order.order_id is None
        if resumed and (self.exit_only or self._stale(s.trade.order.placed_ts)):
            # Sent (maybe) long ago, or the symbol left the watchlist: never sent now. ERROR
            # looks it up by its client id; unknown to the exchange, it counts as never
            # placed and the entry is dropped (a fresh drop needed), as the workflow's
            # timed-out place_order does.
            why = "not in the watchlist" if self.exit_only else "decided too long ago"
            s.last_error = f"resumed buy {s.trade.order.client_order_id} not sent: {why}"
            self.transition(Trigger.FAILED, s.last_error)
            return
        if not resumed:
            ticker = self._ticker
            if ticker is None or self.exit_only:  # restarted: the decision's ticker is gone
                self.abandon_entry(Trigger.ORDER_REJECTED, "entry snapshot lost; re-watching")
                return
            sizing = size_buy(p.budget_for(market.quote), ticker.ask, market)
            if not sizing.ok:
                self.abandon_entry(Trigger.ORDER_REJECTED, sizing.reason)
                return
            s.order_seq += 1
            coid = ids.client_order_id(self.wf_id, s.lineage, s.order_seq)
            start_order(
                s, client_order_id=coid, side=OrderSide.BUY, amount=sizing.amount, now=time.time()
            )
            self.save()  # committed before the order is sent
        mode = p.buy_order_mode
        request = OrderRequest(
            symbol=s.symbol,
            side=OrderSide.BUY,
            amount=s.trade.order.amount,
            client_order_id=s.trade.order.client_order_id or "",
            type=OrderType.MARKET if mode is BuyOrderMode.MARKET else OrderType.LIMIT,
            time_in_force=Tif.GTC if mode is BuyOrderMode.GTC else Tif.IOC,
        )
        offset = None if mode is BuyOrderMode.MARKET else p.buy_limit_offset_bps
        order = await self._place(request, offset, resumed=resumed)
        if order is None:
            return
        s.trade.order.order_id = order.id
        self._last_order = order
        self.transition(Trigger.ORDER_PLACED, f"buy {order.amount} @ {order.price or 'market'}")

    def _stale(self, placed_ts: float) -> bool:
        """Past the time an attempt sent then could still show up at the exchange."""
        p = self.p
        limit = p.order_activity_timeout_seconds + p.order_consistency_window_seconds
        return time.time() - placed_ts > limit

    async def wait_fill(self) -> None:
        s = self.s
        order = await self._settle(
            self.p.buy_order_timeout_seconds, until=lambda: s.trade.force_exit_reason is not None
        )
        apply_fill(s, order)
        await self._settle_buy(order)

    async def _settle_buy(self, order: Order) -> None:
        s = self.s
        assert s.market is not None
        if s.trade.amount > 0:
            join_inventory(s)
        dust = s.trade.amount > 0 and is_dust(s.trade.amount, s.bid or s.current_price, s.market)
        if s.trade.amount > 0 and not dust:
            if s.trade.force_exit_reason is not None:
                s.trade.exit_reason = ExitReason.FORCE_EXIT
                self.transition(
                    Trigger.FORCE_EXIT, f"force exit during buy: {s.trade.force_exit_reason}"
                )
            else:
                self._enter_position(order)
            return
        if dust:
            self._book_unsellable()
        trigger = Trigger.CANCELLED if s.trade.force_exit_reason is not None else Trigger.TIMEOUT
        self.abandon_entry(
            trigger,
            "buy not filled" if not dust else f"buy filled only {s.trade.amount}: inventory",
        )

    def _enter_position(self, order: Order) -> None:
        s = self.s
        self._open()
        s.current_price = s.trade.entry_price
        trigger = Trigger.FILLED if order.filled >= order.amount else Trigger.PARTIAL_TIMEOUT
        self.notify(  # sent after the transition's save
            "entry",
            format_entry(
                symbol=s.symbol,
                amount=s.trade.amount,
                price=s.trade.entry_price,
                cost=s.trade.entry_cost,
                simulated=s.simulated,
            ),
        )
        self.transition(trigger, f"bought {s.trade.amount} @ {s.trade.entry_price}")
