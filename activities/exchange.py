"""Exchange activities: warm-up, order placement (exactly once in effect), fill waiting,
cancellation and reconciliation."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import to_application_error
from trader import contracts as c
from trader.core.errors import BadSymbol, DuplicateClientOrderId, ExchangeError, OrderNotFound
from trader.core.market import Balance, Order, OrderRequest, OrderSide, OrderType
from trader.core.sizing import buy_limit_price, round_down
from trader.exchange.port import Exchange
from trader.hub import MarketHub
from trader.observe.metrics import TraderMetrics

_BPS = Decimal(10_000)
_NONE = Balance(free=Decimal(0), total=Decimal(0))
_SETTLE_POLL_S = 0.5


class ExchangeActivities:
    """Activities that talk to one exchange account."""

    def __init__(self, exchange: Exchange, hub: MarketHub, *,
                 metrics: TraderMetrics | None = None) -> None:
        self.exchange = exchange
        self.hub = hub
        self.metrics = metrics

    def _failed(self, exc: ExchangeError) -> ApplicationError:
        """Translate, and count the failed attempt (activities never replay: counted once
        per attempt that really failed)."""
        err = to_application_error(exc)
        if self.metrics is not None:
            self.metrics.exchange_error(activity.info().activity_type, err.type or "unknown")
        return err

    @activity.defn(name=c.WARMUP)
    async def warmup(self, inp: c.WarmupInput) -> c.WarmupResult:
        """Load the market, take a ticker and backfill the recent high for the anchor."""
        try:
            markets = await self.exchange.load_markets()
            if inp.symbol not in markets:
                raise BadSymbol(f"unknown symbol {inp.symbol!r} on {self.exchange.name}")
            ticker = await self.hub.ticker(inp.symbol)
            high = None
            if inp.backfill_minutes > 0:
                candles = await self.exchange.fetch_ohlcv(
                    inp.symbol, since_ms=ticker.ts_ms - inp.backfill_minutes * 60_000,
                    limit=inp.backfill_minutes + 1,
                )
                high = max((k.high for k in candles), default=None)
        except ExchangeError as exc:
            raise self._failed(exc) from exc
        return c.WarmupResult(
            market=markets[inp.symbol], ticker=ticker, backfill_high=high,
            simulated=self.exchange.simulated,
        )

    @activity.defn(name=c.PLACE_ORDER)
    async def place_order(self, inp: c.PlaceOrderInput) -> Order:
        """Place the order unless an order with its client id exists already.

        The lookup first is what makes retries safe: a create that timed out may have
        reached the exchange, so "unknown" is resolved by asking, never by placing again.
        """
        try:
            try:
                return await self.exchange.fetch_order(inp.symbol, inp.client_order_id)
            except OrderNotFound:
                pass
            request = await self._request(inp)
            try:
                return await self.exchange.create_order(request)
            except DuplicateClientOrderId:
                # Raced with an earlier attempt that did reach the exchange.
                return await self.exchange.fetch_order(inp.symbol, inp.client_order_id)
        except ExchangeError as exc:
            raise self._failed(exc) from exc

    async def _request(self, inp: c.PlaceOrderInput) -> OrderRequest:
        if inp.type is OrderType.MARKET or inp.limit_offset_bps is None:
            return OrderRequest(
                symbol=inp.symbol, side=inp.side, type=OrderType.MARKET, amount=inp.amount,
                client_order_id=inp.client_order_id, time_in_force=inp.time_in_force,
            )
        market = (await self.exchange.load_markets())[inp.symbol]
        ticker = await self.hub.ticker(inp.symbol)
        if inp.side is OrderSide.BUY:
            price = buy_limit_price(ticker.ask, inp.limit_offset_bps, market.price_tick)
        else:
            price = max(
                round_down(ticker.bid * (1 - inp.limit_offset_bps / _BPS), market.price_tick),
                market.price_tick,
            )
        return OrderRequest(
            symbol=inp.symbol, side=inp.side, type=OrderType.LIMIT, amount=inp.amount,
            price=price, time_in_force=inp.time_in_force, client_order_id=inp.client_order_id,
        )

    @activity.defn(name=c.WAIT_ORDER)
    async def wait_order(self, ref: c.OrderRef) -> Order:
        """Poll until the order is final, heartbeating; the workflow's timer bounds it."""
        while True:
            try:
                order = await self.exchange.fetch_order(ref.symbol, ref.client_order_id)
            except ExchangeError as exc:
                raise self._failed(exc) from exc
            if order.is_final:
                return order
            activity.heartbeat(str(order.filled))
            await asyncio.sleep(ref.poll_interval_s)

    @activity.defn(name=c.CANCEL_ORDER)
    async def cancel_order(self, ref: c.OrderRef) -> Order:
        """Cancel if open; the final order (with whatever filled) either way."""
        try:
            return await self.exchange.cancel_order(ref.symbol, ref.client_order_id)
        except ExchangeError as exc:
            raise self._failed(exc) from exc

    @activity.defn(name=c.RECONCILE)
    async def reconcile(self, inp: c.ReconcileInput) -> c.ReconcileResult:
        """What the exchange says about the symbol's last order and base balance.

        A balance below what the symbol expects is read again until it covers it or
        ``settle_seconds`` pass: an exchange's balance can lag a fill by a moment, and a
        shortfall reported on a stale read would write off coins the account does hold.
        """
        try:
            order = None
            if inp.client_order_id:
                try:
                    order = await self.exchange.fetch_order(inp.symbol, inp.client_order_id)
                except OrderNotFound:
                    order = None
            balance = await self._settled_balance(inp)
            ticker = await self.hub.ticker(inp.symbol)
        except ExchangeError as exc:
            raise self._failed(exc) from exc
        return c.ReconcileResult(order=order, base_balance=balance.total, ticker=ticker,
                                 base_free=balance.free)

    async def _settled_balance(self, inp: c.ReconcileInput) -> Balance:
        deadline = time.monotonic() + inp.settle_seconds
        while True:
            balance = (await self.exchange.fetch_balances()).get(inp.base, _NONE)
            short = inp.expect_base is not None and min(balance.free, balance.total) \
                < inp.expect_base
            if not short or time.monotonic() >= deadline:
                if short:
                    activity.logger.warning(
                        "%s: %s free %s / total %s, below the %s expected (after %.1fs)",
                        inp.symbol, inp.base, balance.free, balance.total, inp.expect_base,
                        inp.settle_seconds)
                return balance
            activity.heartbeat("settling balance")
            await asyncio.sleep(_SETTLE_POLL_S)
