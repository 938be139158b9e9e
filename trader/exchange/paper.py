"""The paper exchange: an exchange simulator behind the ``Exchange`` port.

The book is derived from the feed's mid price (spread, a few levels of fixed quote
liquidity); limit IOC/GTC and market orders match against it with partial fills and
taker fees; GTC remainders rest and are matched again whenever the order is looked at.
The book, the faults and matching are ``paper_book``'s; orders and balances persist in
SQLite (see ``paper_store``). Duplicate client order ids are rejected as a real exchange
does: always in paper mode; while the order is open only, as Binance does, when
``reuse_final_client_ids`` is set (the Binance simulator). Faults can be injected for tests
and drills.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from trader.core import errors
from trader.core.market import (
    Balance,
    Candle,
    MarketInfo,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    Ticker,
)
from trader.core.sizing import round_down
from trader.exchange.feed import PriceFeed
from trader.exchange.paper_book import PaperBook, PaperFaults
from trader.exchange.paper_store import PaperFill, PaperStore

__all__ = ["PaperExchange", "PaperFaults"]


class PaperExchange(PaperBook):
    """A simulated exchange account (``simulated = True``)."""

    simulated = True

    def __init__(
        self,
        feed: PriceFeed,
        *,
        db_path: Path,
        quote_balances: dict[str, Decimal] | None = None,
        spread_bps: Decimal = Decimal(10),
        depth_levels: int = 5,
        level_liquidity_quote: Decimal = Decimal(50_000),
        fee_rate: Decimal | None = None,
        faults: PaperFaults | None = None,
        clock: Callable[[], int] | None = None,
        name: str = "paper",
        fee_in_received_asset: bool = False,
        reuse_final_client_ids: bool = False,
    ) -> None:
        """``fee_in_received_asset``: charge a buy's commission in the base bought, as
        Binance does (the account receives ``filled - fee_base``); sells always pay in quote.
        Off by default: the paper mode's own accounting charges every fee in quote.

        ``reuse_final_client_ids``: a client id is refused only while an order with it is
        open; once that order is final the id is accepted again as a new order (Binance).
        Off by default: in paper mode a client id names one order, ever."""
        self.feed = feed
        self.name = name
        self.spread_bps = spread_bps
        self.depth_levels = depth_levels
        self.level_liquidity_quote = level_liquidity_quote
        self.fee_rate = fee_rate
        self.faults = faults
        self.fee_in_received_asset = fee_in_received_asset
        self.reuse_final_client_ids = reuse_final_client_ids
        self._clock = clock or (lambda: int(time.time() * 1000))
        self._store = PaperStore(db_path)
        self._creates = 0
        self._lookups = 0
        if quote_balances:
            self._store.init_balances(quote_balances)

    @staticmethod
    def origin_ms_for(db_path: Path, default_ms: int) -> int:
        """The generated market's origin, fixed by whichever process opened the file first."""
        store = PaperStore(db_path)
        try:
            return int(store.meta_default("origin_ms", str(default_ms)))
        finally:
            store.close()

    # --- market data -------------------------------------------------------------------
    async def load_markets(self) -> dict[str, MarketInfo]:
        return {s: self.feed.market(s) for s in self.feed.symbols}

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        now = self._clock()
        out = {}
        for symbol in symbols:
            _, bid, ask = self._book_top(symbol, now)
            out[symbol] = Ticker(
                symbol=symbol,
                ts_ms=now,
                bid=bid,
                ask=ask,
                last=self.feed.mid(symbol, now),
                quote_volume=self.feed.quote_volume(symbol, now),
            )
        return out

    async def fetch_ohlcv(self, symbol: str, *, since_ms: int, limit: int) -> list[Candle]:
        return self.feed.candles(symbol, since_ms=since_ms, until_ms=self._clock(), limit=limit)

    # --- orders -------------------------------------------------------------------------
    async def create_order(self, request: OrderRequest) -> Order:
        f = self.faults
        if f and f.create_latency_s:
            await asyncio.sleep(f.create_latency_s)
        if f and self._creates < f.fail_creates:
            self._creates += 1
            raise errors.RetryableExchangeError("paper: injected create failure")
        if f and f.reject_creates_with:
            cls = getattr(errors, f.reject_creates_with)
            raise cls(f"paper: injected rejection ({f.reject_creates_with})")
        order = self._validate(request)
        with self._store.transaction() as db:
            earlier = PaperStore.get_order(db, request.client_order_id)
            if self.reuse_final_client_ids and earlier is not None and not earlier.is_final:
                earlier = self._match(db, earlier)  # it may be final by now
            if earlier is not None and not (self.reuse_final_client_ids and earlier.is_final):
                raise errors.DuplicateClientOrderId(
                    f"duplicate client order id {request.client_order_id}"
                )
            self._check_funds(db, request, order)
            order = order.model_copy(update={"id": PaperStore.next_id(db)})
            PaperStore.insert_order(db, order, repeat=earlier is not None)
            order = self._match(db, order)
        if f and f.accept_then_hang_s:
            await asyncio.sleep(f.accept_then_hang_s)
        return order

    def _validate(self, r: OrderRequest) -> Order:
        market = self.feed.market(r.symbol)
        if r.amount <= 0 or round_down(r.amount, market.amount_step) != r.amount:
            raise errors.InvalidOrder(
                f"amount {r.amount} is not a positive multiple of {market.amount_step}"
            )
        if r.amount < market.min_amount:
            raise errors.InvalidOrder(f"amount {r.amount} below minimum {market.min_amount}")
        if r.type is OrderType.LIMIT and (
            r.price is None or r.price <= 0 or round_down(r.price, market.price_tick) != r.price
        ):
            raise errors.InvalidOrder(
                f"limit price {r.price} is not a positive multiple of {market.price_tick}"
            )
        _, bid, ask = self._book_top(r.symbol, self._clock())
        ref = r.price if r.price is not None else (ask if r.side is OrderSide.BUY else bid)
        if r.amount * ref < market.min_cost:
            raise errors.InvalidOrder(
                f"order value {r.amount * ref} below minimum cost {market.min_cost}"
            )
        return Order(
            id="",
            client_order_id=r.client_order_id,
            symbol=r.symbol,
            side=r.side,
            type=r.type,
            time_in_force=r.time_in_force,
            amount=r.amount,
            price=r.price,
            status=OrderStatus.OPEN,
            ts_ms=self._clock(),
        )

    def _check_funds(self, db: sqlite3.Connection, r: OrderRequest, order: Order) -> None:
        market = self.feed.market(r.symbol)
        if r.side is OrderSide.BUY:
            need, currency = self.buy_cost(r.symbol, r.amount, r.price), market.quote
        else:
            need, currency = r.amount, market.base
        held = self.held(self._store.open_orders()).get(currency, Decimal(0))
        have = PaperStore.balance(db, currency) - held
        if have < need:
            raise errors.InsufficientFunds(f"need {need} {currency}, have {have}")

    def _refresh(
        self,
        symbol: str,
        client_order_id: str,
        *,
        order_id: str | None = None,
        cancel: bool = False,
    ) -> Order:
        """Re-match an open order (then cancel what is left, if asked) in one transaction:
        another process cannot fill it between the read and the write. The order is the one
        with ``order_id`` when given, else the newest with the client id."""
        if self.faults and self._lookups < self.faults.fail_lookups:
            self._lookups += 1
            raise errors.RetryableExchangeError("paper: injected lookup failure")
        with self._store.transaction() as db:
            order = (
                PaperStore.get_order(db, client_order_id)
                if order_id is None
                else PaperStore.get_order_by_id(db, order_id)
            )
            if order is None or order.symbol != symbol or order.client_order_id != client_order_id:
                raise errors.OrderNotFound(f"no order {client_order_id} on {symbol}")
            if order.status is OrderStatus.OPEN:
                order = self._match(db, order)
            if cancel and order.status is OrderStatus.OPEN:
                order = order.model_copy(update={"status": OrderStatus.CANCELED})
                PaperStore.save_order(db, order)
            return order

    def lookup(self, client_order_id: str) -> Order | None:
        """The newest order with this client id as stored (not re-matched), any symbol; None
        if there is none."""
        with self._store.transaction() as db:
            return PaperStore.get_order(db, client_order_id)

    def orders_with_client_id(self, client_order_id: str) -> list[Order]:
        """Every order with this client id as stored, oldest first (more than one only with
        ``reuse_final_client_ids``)."""
        return self._store.orders_with_client_id(client_order_id)

    def lookup_id(self, order_id: str) -> Order | None:
        """The order with this exchange id as stored (not re-matched); None if there is none."""
        return self._store.order_by_id(order_id)

    async def fetch_order(
        self, symbol: str, client_order_id: str, *, order_id: str | None = None
    ) -> Order:
        return self._refresh(symbol, client_order_id, order_id=order_id)

    async def cancel_order(
        self, symbol: str, client_order_id: str, *, order_id: str | None = None
    ) -> Order:
        return self._refresh(symbol, client_order_id, order_id=order_id, cancel=True)

    def exchange_client_id(self, client_order_id: str) -> str:
        return client_order_id  # kept as given

    async def fetch_open_orders(self, symbol: str, *, reconcile: bool = False) -> list[Order]:
        stored = self._store.open_orders(symbol)
        return [
            o
            for o in (self._refresh(symbol, s.client_order_id, order_id=s.id) for s in stored)
            if o.status is OrderStatus.OPEN
        ]

    async def fetch_all_open_orders(self) -> list[Order] | None:
        return await self.refresh_open_orders()

    async def fetch_recent_orders(self, symbol: str, *, since_ms: int) -> list[Order]:
        """Every order of the symbol placed at or after ``since_ms``, oldest first (open
        ones re-matched first)."""
        recent = [o for o in self._store.orders(symbol) if o.ts_ms >= since_ms]
        return [
            self._refresh(symbol, o.client_order_id, order_id=o.id)
            if o.status is OrderStatus.OPEN
            else o
            for o in recent
        ]

    def set_balance(self, currency: str, amount: Decimal) -> None:
        """Set one balance (a test or a drill topping the account up)."""
        with self._store.transaction() as db:
            PaperStore.add_balance(db, currency, amount - PaperStore.balance(db, currency))

    async def fetch_balance(self) -> dict[str, Decimal]:
        return self._store.balances()

    async def fetch_balances(self, *, reconcile: bool = False) -> dict[str, Balance]:
        """Free = total minus what open orders (re-matched first) may still spend."""
        held = self.held(await self.refresh_open_orders())
        totals = self._store.balances()
        return {
            c: Balance(
                free=totals.get(c, Decimal(0)) - held.get(c, Decimal(0)),
                total=totals.get(c, Decimal(0)),
            )
            for c in sorted(set(totals) | set(held))
        }

    async def refresh_open_orders(self) -> list[Order]:
        """Match every open order (all symbols) against the current book; the still-open ones."""
        stored = sorted(self._store.open_orders(), key=lambda o: o.symbol)  # one read
        refreshed = (self._refresh(o.symbol, o.client_order_id, order_id=o.id) for o in stored)
        return [o for o in refreshed if o.status is OrderStatus.OPEN]

    def fills(
        self,
        symbol: str | None = None,
        *,
        client_order_id: str | None = None,
        order_id: str | None = None,
    ) -> list[PaperFill]:
        """Every fill (of one symbol, of one client id, of one order), oldest first."""
        return self._store.fills(symbol, client_order_id=client_order_id, order_id=order_id)

    def all_orders(self) -> list[Order]:
        """Every order ever placed, oldest first (inspection and tests)."""
        return self._store.orders()

    async def close(self) -> None:
        self._store.close()
