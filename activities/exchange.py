"""Exchange activities: warm-up, order placement (exactly once in effect), fill waiting,
cancellation and reconciliation."""

from __future__ import annotations

import asyncio
import math
import time

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import to_application_error
from activities.order_window import OrderWindow, Progress
from trader import contracts as c
from trader.core.consistency import Seen, attempt_times, window_problem
from trader.core.errors import (
    BadSymbol,
    DuplicateClientOrderId,
    ExchangeError,
    OrderAcceptedUnread,
    OrderNotFound,
    OrderStatusUnknown,
)
from trader.core.market import Balance, Order, OrderRequest, OrderSide, OrderType
from trader.core.sizing import order_limit_price
from trader.exchange.balance import settled_balance
from trader.exchange.order_lists import find_listed
from trader.exchange.port import Exchange
from trader.hub import MarketHub
from trader.observe.metrics import TraderMetrics

# The ApplicationError type of an order call refused for the other account's workflow.
WRONG_ACCOUNT = "WrongAccount"


class ExchangeActivities:
    """Activities that talk to one exchange account."""

    def __init__(
        self,
        exchange: Exchange,
        hub: MarketHub,
        *,
        metrics: TraderMetrics | None = None,
        consistency_window_s: float = 5.0,
        order_poll_s: float = 0.5,
    ) -> None:
        """``consistency_window_s``: how long after an earlier attempt may last have sent a
        create its order may still be invisible to the exchange's queries (lookup lag plus
        transit); ``order_poll_s``: how often the order query is asked meanwhile."""
        self.exchange = exchange
        self.hub = hub
        self.metrics = metrics
        self.consistency_window_s = consistency_window_s
        self.order_poll_s = order_poll_s

    def _failed(self, exc: ExchangeError) -> ApplicationError:
        """Translate, and count the failed attempt (activities never replay: counted once
        per attempt that really failed)."""
        err = to_application_error(exc)
        if self.metrics is not None:
            self.metrics.exchange_error(activity.info().activity_type, err.type or "unknown")
        return err

    def _same_account(self, simulated: bool | None, what: str) -> None:
        """Refuse an order call for a workflow of the other account: a simulated (shadow,
        dry-run) workflow's order run by a worker on the real exchange would be a real
        order, and a live one's on a simulated account a fill that never happened. None:
        a workflow older than the field, not checked."""
        if simulated is None or simulated == self.exchange.simulated:
            return
        kinds = {True: "simulated", False: "real"}
        raise ApplicationError(
            f"{what}: the workflow trades a {kinds[simulated]} account, this worker's "
            f"{self.exchange.name} is {kinds[self.exchange.simulated]}; refused (a worker "
            "of the other role polls this task queue: docs/migration.md)",
            type=WRONG_ACCOUNT,
            non_retryable=True,
        )

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
                    inp.symbol,
                    since_ms=ticker.ts_ms - inp.backfill_minutes * 60_000,
                    limit=inp.backfill_minutes + 1,
                )
                high = max((k.high for k in candles), default=None)
        except ExchangeError as exc:
            raise self._failed(exc) from exc
        return c.WarmupResult(
            market=markets[inp.symbol],
            ticker=ticker,
            backfill_high=high,
            simulated=self.exchange.simulated,
        )

    @activity.defn(name=c.PLACE_ORDER)
    async def place_order(self, inp: c.PlaceOrderInput) -> Order:
        """Place the order unless an order with its client id exists already.

        The lookup first is what makes retries safe: a create that timed out may have
        reached the exchange, so "unknown" is resolved by asking, never by placing again.
        Because the exchange's query can lag behind a fresh order, a retry creates only
        once absence is confirmed over the consistency window; a retry that knows the
        order's exchange id (an earlier attempt got the create's answer) only reads it.
        """
        self._same_account(inp.simulated, inp.client_order_id)
        window = self._window(inp)
        progress = Progress.of(activity.info().heartbeat_details)
        try:
            # Past the deadline nothing this attempt learns is worth waiting for: end it as
            # a retryable failure before Temporal times it out (so its heartbeat details go
            # with the failure), and a create in flight then is as unknown as a lost one.
            left = window.times.end - time.monotonic()  # inf: no start-to-close given
            async with asyncio.timeout(None if math.isinf(left) else max(0.0, left)):
                return await self._place(inp, window, progress)
        except TimeoutError:
            raise self._failed(_out_of_time(inp, progress)) from None
        except ExchangeError as exc:
            raise self._failed(exc) from exc

    async def _place(
        self, inp: c.PlaceOrderInput, window: OrderWindow, progress: Progress
    ) -> Order:
        if progress.order_id is not None:
            progress.record()  # for the attempts after this one, too
            return await window.read_created(progress.order_id)
        try:
            return await self.exchange.fetch_order(inp.symbol, inp.client_order_id)
        except OrderNotFound:
            pass
        if activity.info().attempt > 1:  # an earlier create may have landed unseen
            found = await window.confirm_absent()
            if found is not None:
                return found
        return await self._create(inp, window)

    def _window(self, inp: c.PlaceOrderInput) -> OrderWindow:
        info = activity.info()
        timeout = info.start_to_close_timeout or info.schedule_to_close_timeout
        timeout_s = timeout.total_seconds() if timeout else None
        if (
            info.attempt > 1
            and timeout_s is not None
            and (problem := window_problem(self.consistency_window_s, timeout_s))
        ):
            activity.logger.error("%s: no retry of this order can create", problem)
        started = info.started_time.timestamp()
        times = attempt_times(
            now=time.monotonic(),
            now_wall=time.time(),
            timeout_s=timeout_s,
            queued_s=started - info.current_attempt_scheduled_time.timestamp(),
            since_first_s=started - info.scheduled_time.timestamp(),
            window_s=self.consistency_window_s,
        )
        return OrderWindow(self.exchange, inp, times, poll_s=self.order_poll_s)

    async def _create(self, inp: c.PlaceOrderInput, window: OrderWindow) -> Order:
        request = await self._request(inp)
        # Past its deadline Temporal may have timed this attempt out and started the next,
        # whose window counts from its own schedule: a create sent now could go unseen.
        # (place_order's timeout cancels one still in flight at the deadline.)
        if time.monotonic() >= window.times.deadline:
            activity.logger.warning(
                "%s: not sent, the attempt's deadline has passed", inp.client_order_id
            )
            raise OrderStatusUnknown(
                f"order {inp.client_order_id} not sent: the attempt's deadline has passed"
            )
        try:
            return await self.exchange.create_order(request)
        except OrderAcceptedUnread as exc:
            Progress(order_id=exc.order_id).record()  # the next attempt reads it by id
            raise
        except DuplicateClientOrderId:
            # Another attempt's order with this id is open (Binance refuses an id only then).
            return await window.find_existing()

    async def _request(self, inp: c.PlaceOrderInput) -> OrderRequest:
        if inp.type is OrderType.MARKET or inp.limit_offset_bps is None:
            return OrderRequest(
                symbol=inp.symbol,
                side=inp.side,
                type=OrderType.MARKET,
                amount=inp.amount,
                client_order_id=inp.client_order_id,
                time_in_force=inp.time_in_force,
            )
        market = (await self.exchange.load_markets())[inp.symbol]
        ticker = await self.hub.order_ticker(inp.symbol)
        price = order_limit_price(inp.side, ticker, inp.limit_offset_bps, market.price_tick)
        return OrderRequest(
            symbol=inp.symbol,
            side=inp.side,
            type=OrderType.LIMIT,
            amount=inp.amount,
            price=price,
            time_in_force=inp.time_in_force,
            client_order_id=inp.client_order_id,
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
        self._same_account(ref.simulated, ref.client_order_id)
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
        self._same_account(inp.simulated, inp.client_order_id or inp.symbol)
        try:
            order = await self._reconciled_order(inp) if inp.client_order_id else None
            balance = await self._settled_balance(inp)
            ticker = await self.hub.ticker(inp.symbol)
        except ExchangeError as exc:
            raise self._failed(exc) from exc
        return c.ReconcileResult(
            order=order, base_balance=balance.total, ticker=ticker, base_free=balance.free
        )

    async def _reconciled_order(self, inp: c.ReconcileInput) -> Order | None:
        """The order by its client id: the order query, then (if the workflow says from
        when) the lists the order activity's retry asks too."""
        assert inp.client_order_id
        try:
            return await self.exchange.fetch_order(inp.symbol, inp.client_order_id)
        except OrderNotFound:
            if inp.lists_since_ms is None:
                return None
        seen, order, source = await find_listed(
            self.exchange,
            inp.symbol,
            inp.client_order_id,
            sides=(inp.side,) if inp.side else OrderSide,
            since_ms=inp.lists_since_ms,
        )
        if order is not None:
            activity.logger.info("%s: found by %s", inp.client_order_id, source)
        if seen is Seen.UNATTRIBUTED:
            raise OrderStatusUnknown(
                f"order {inp.client_order_id}: an unattributed trade on {inp.symbol} may be it"
            )
        return order

    async def _settled_balance(self, inp: c.ReconcileInput) -> Balance:
        return await settled_balance(
            self.exchange,
            inp.base,
            expect=inp.expect_base,
            settle_seconds=inp.settle_seconds,
            symbol=inp.symbol,
            logger=activity.logger,
            on_wait=lambda: activity.heartbeat("settling balance"),
        )


def _out_of_time(inp: c.PlaceOrderInput, progress: Progress) -> ExchangeError:
    """An attempt that reached its end: retryable, and still naming the order if known."""
    activity.logger.warning(
        "%s: the attempt ran out of time; nothing is sent after its deadline", inp.client_order_id
    )
    if progress.order_id is not None:
        return OrderAcceptedUnread(
            f"order {inp.client_order_id} (exchange id "
            f"{progress.order_id}) not read by the attempt's deadline",
            order_id=progress.order_id,
        )
    return OrderStatusUnknown(f"order {inp.client_order_id}: no outcome by the attempt's deadline")
