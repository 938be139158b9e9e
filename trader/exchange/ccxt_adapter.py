"""The ``Exchange`` port over any ccxt exchange (``ccxt.async_support``).

One instance per worker process, shared by the activities and the market-data hub: markets
are loaded once (behind a lock), ccxt's throttler sees every request, and one HTTP session
is reused. Every ccxt exception is translated at this boundary (``ccxt_errors``); credentials
live only inside the ccxt client and are blanked from every message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async
from pydantic import SecretStr

from trader.core.errors import (
    BadSymbol,
    ConfigError,
    ExchangeError,
    OrderAcceptedUnread,
    OrderNotFound,
    OrderRejected,
    OrderStatusUnknown,
    RetryableExchangeError,
)
from trader.core.market import (
    Balance,
    Candle,
    MarketInfo,
    Order,
    OrderRequest,
    OrderType,
    Ticker,
)
from trader.exchange import ccxt_convert as cv
from trader.exchange import ccxt_throttle
from trader.exchange.ccxt_errors import translate
from trader.exchange.ccxt_fees import OrderFees
from trader.exchange.ccxt_recent import recent_orders
from trader.exchange.ccxt_setup import (
    acknowledge_open_orders_cost,
    client_id_rule,
    configure,
    default_rate_limit_ms,
    has_book_stream,
    listing_complete,
    listing_page,
    request_cost,
)
from trader.exchange.ccxt_stream import BookStreams

log = logging.getLogger(__name__)
T = TypeVar("T")
MARKET_DATA_SHARE = 0.5
"""Share of the exchange's request budget the market-data client may use; orders, lookups
and balances have the rest to themselves (less ``AUDIT_SHARE``)."""
AUDIT_SHARE = 0.05
"""Share of the budget of the validator's reads, its balances and its all-symbols open-orders
listing (Binance: weights 20 and 80, 4 and 16 units in ccxt's model): on the order path's
throttler they would hold the next order back by 20 units (2 s at ccxt's default); on their
own client, one check a minute fits in 5 %."""


class CcxtExchange:
    """A real exchange account through ccxt (``simulated = False``)."""

    simulated = False

    def __init__(
        self,
        exchange_id: str,
        *,
        api_key: SecretStr | None = None,
        api_secret: SecretStr | None = None,
        sandbox: bool = False,
        api_url: str | None = None,
        tickers_chunk_size: int = 100,
        timeout_s: float = 10.0,
        rate_limit_ms: float | None = None,
        streams: bool = False,
    ) -> None:
        """Build the ccxt clients (no request is made until first use).

        Two clients split the exchange's request budget: batched market data (the hub's
        ticker polls, candles) on one, everything on the order path on the other. ccxt's
        throttler is one FIFO token bucket per client, and a batched ticker request weighs
        16-80 units on Binance: on a shared client every order placed right after a hub
        poll would wait behind that debt (seconds). Split, an order never waits for
        market data, and the two together stay within the exchange's limit.

        Args:
            exchange_id: any id in ``ccxt.exchanges`` (``binance``, ``kraken``, ...).
            api_key, api_secret: from the environment (Settings); never logged.
            sandbox: use the exchange's testnet (``set_sandbox_mode``).
            api_url: base URL replacing the host of every API endpoint (testnet, proxy or
                the local Binance-compatible server), e.g. ``http://127.0.0.1:8765``.
            tickers_chunk_size: symbols per ``fetch_tickers`` request.
            timeout_s: HTTP timeout of one request.
            rate_limit_ms: the exchange's pacing in ms per unit of request weight (None:
                ccxt's model of the exchange); split between the two clients.
            streams: offer the exchange's top-of-book WebSocket stream (``watch_books``)
                where ccxt.pro has one; a third client, without credentials.

        Raises:
            ConfigError: unknown exchange id, or no sandbox for this exchange.
        """
        if exchange_id not in ccxt_async.exchanges:
            raise ConfigError(
                f"EXCHANGE={exchange_id!r} is neither 'paper' nor a ccxt exchange "
                f"id (e.g. binance, kraken, okx; {len(ccxt_async.exchanges)} known)"
            )
        self.name = exchange_id
        self.api_url = api_url
        self.tickers_chunk_size = max(1, tickers_chunk_size)
        self._secrets = [s.get_secret_value() for s in (api_key, api_secret) if s]
        base_ms = rate_limit_ms if rate_limit_ms is not None else default_rate_limit_ms(exchange_id)
        client = functools.partial(
            configure, exchange_id, sandbox=sandbox, api_url=api_url, timeout_s=timeout_s
        )
        self._ex: Any = client(
            api_key=api_key,
            api_secret=api_secret,
            rate_limit_ms=base_ms / (1 - MARKET_DATA_SHARE - AUDIT_SHARE),
        )
        # Reconciliation reads (the validator) on a budget of their own.
        self._audit: Any = client(
            api_key=api_key, api_secret=api_secret, rate_limit_ms=base_ms / AUDIT_SHARE
        )
        acknowledge_open_orders_cost(self._audit)
        self._listed_per_symbol = not self._audit.has.get("fetchOpenOrders")
        # Public data needs no credentials: the market-data client never holds them.
        self._md: Any = client(
            api_key=None, api_secret=None, rate_limit_ms=base_ms / MARKET_DATA_SHARE
        )
        self._ids = client_id_rule(exchange_id)
        self._ours: dict[str, str] = {}  # client id as sent -> ours (lists name the former)
        self._markets: dict[str, MarketInfo] | None = None
        self._markets_lock = asyncio.Lock()
        self._last: dict[str, Ticker] = {}
        self._delisted: set[str] = set()  # refused by the exchange since load_markets
        self.streams = streams and has_book_stream(exchange_id)
        self._books = BookStreams(  # streams are public too: no credentials
            functools.partial(client, api_key=None, api_secret=None, pro=True),
            markets=lambda: (self._ex.markets, self._ex.currencies),
            call=self._call,
            last=self._last,
        )
        self._fees = OrderFees(
            self._ex, call=self._call, markets=self.load_markets, tickers=self.fetch_tickers
        )

    def __repr__(self) -> str:  # never the credentials
        return f"CcxtExchange({self.name!r}, api_url={self.api_url!r})"

    async def _call(self, call: Awaitable[T], *, creating: bool = False, client: Any = None) -> T:
        try:
            return await call
        except ccxt.BaseError as exc:
            # Read the failed response's headers now: no other request ran since it raised.
            headers = getattr(client or self._ex, "last_response_headers", None)
            raise translate(
                exc, creating=creating, headers=headers, secrets=self._secrets
            ) from None

    # --- market data -------------------------------------------------------------------
    async def load_markets(self) -> dict[str, MarketInfo]:
        """Spot markets, loaded from the exchange once per process and shared."""
        async with self._markets_lock:
            if self._markets is None:
                raw = await self._call(self._ex.load_markets())
                self._md.set_markets(self._ex.markets, self._ex.currencies)
                self._audit.set_markets(self._ex.markets, self._ex.currencies)
                await self._fit_audit_bucket()
                mode = int(self._ex.precisionMode)
                infos = (cv.market_info(m, mode) for m in raw.values())
                self._markets = {m.symbol: m for m in infos if m is not None}
                log.info("%s: %d spot markets loaded", self.name, len(self._markets))
            return self._markets

    async def _market(self, symbol: str) -> MarketInfo:
        markets = await self.load_markets()
        if symbol not in markets:
            raise BadSymbol(f"unknown symbol {symbol!r} on {self.name}")
        return markets[symbol]

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        """One request per ``tickers_chunk_size`` symbols; the single-ticker request for one
        symbol, or per symbol on exchanges without a batch endpoint."""
        markets = await self.load_markets()
        if unknown := [s for s in symbols if s not in markets]:
            raise BadSymbol(f"unknown symbol {unknown[0]!r} on {self.name}")
        raw: dict[str, Any] = {}
        asked: dict[str, int] = {}
        # One symbol: the single-ticker request, which exchanges weigh far less (Binance:
        # 2 against 80 for a symbols list) and ccxt's throttler lets through sooner.
        if len(symbols) > 1 and self._ex.has.get("fetchTickers"):
            batched = [s for s in symbols if s not in self._delisted]
            for i in range(0, len(batched), self.tickers_chunk_size):
                chunk = batched[i : i + self.tickers_chunk_size]
                asked |= dict.fromkeys(chunk, await _sent_at(self._md))
                try:
                    raw.update(await self._call(self._md.fetch_tickers(chunk), client=self._md))
                except BadSymbol:  # delisted since load_markets: must not starve the others
                    await self._one_by_one(chunk, raw)
        else:
            for symbol in symbols:
                asked[symbol] = await _sent_at(self._ex)
                raw[symbol] = await self._call(self._ex.fetch_ticker(symbol))
        out = {}
        for symbol in symbols:
            t = cv.ticker(symbol, raw[symbol], asked[symbol]) if symbol in raw else None
            if t is not None:
                out[symbol] = self._last[symbol] = t
        return out

    async def tickers_ready(self) -> None:
        """Return at a poll's turn in the bucket of the client it goes out on
        (``PacedTickers``): the market-data client's, or the order client's where the
        exchange has no batch endpoint (``fetch_tickers`` asks symbol by symbol there)."""
        batched = self._ex.has.get("fetchTickers")
        await ccxt_throttle.until_free(self._md if batched else self._ex)

    async def _one_by_one(self, chunk: list[str], raw: dict[str, Any]) -> None:
        # Market data, so on the market-data client: a chunk of single requests on the order
        # path would hold every order behind their throttle debt. A refused symbol is left out
        # of later batches, or every poll would repeat this for the life of the process.
        for symbol in chunk:
            try:
                raw[symbol] = await self._call(self._md.fetch_ticker(symbol), client=self._md)
            except BadSymbol:
                self._delisted.add(symbol)
                log.warning(
                    "%s: %s refused as unknown since the markets were loaded; "
                    "left out of ticker polls",
                    self.name,
                    symbol,
                )

    # --- streams (ccxt.pro) --------------------------------------------------------------
    async def watch_books(
        self, symbols: list[str], *, connection: int = 0
    ) -> dict[str, Ticker | None]:
        """The next top-of-book updates of ``symbols`` (see ``BookStreams.watch``).

        Raises:
            RetryableExchangeError: the connection failed or dropped (the next call
                reconnects and subscribes again).
        """
        await self.load_markets()
        return await self._books.watch(symbols, connection=connection)

    async def reconnect_books(self, connection: int) -> None:
        """Close stream connection ``connection`` (a silent one): the next watch redials."""
        await self._books.reconnect(connection)

    async def unwatch_books(self, symbols: list[str]) -> None:
        """End the subscription of exactly this list (as ``watch_books`` was given it)."""
        await self._books.unwatch(symbols)

    def last_ticker(self, symbol: str) -> Ticker | None:
        """The latest ticker this process saw for the symbol (no request)."""
        return self._last.get(symbol)

    async def fetch_ohlcv(self, symbol: str, *, since_ms: int, limit: int) -> list[Candle]:
        await self._market(symbol)
        rows = await self._call(
            self._md.fetch_ohlcv(symbol, "1m", since_ms, limit), client=self._md
        )
        d = cv.exact
        return [
            Candle(
                ts_ms=int(r[0]),
                open=d(r[1]),
                high=d(r[2]),
                low=d(r[3]),
                close=d(r[4]),
                volume=d(r[5] or 0),
            )
            for r in rows
        ]

    # --- orders -------------------------------------------------------------------------
    def _sent(self, client_order_id: str) -> str:
        sent = self._ids.to_exchange(client_order_id)
        self._ours[sent] = client_order_id
        return sent

    async def create_order(self, request: OrderRequest) -> Order:
        m = await self._market(request.symbol)
        sent_id = self._sent(request.client_order_id)
        amount, price = cv.checked(
            request,
            m,
            last=self._last.get(request.symbol),
            sent_id=sent_id,
            id_pattern=self._ids.pattern,
            exchange=self.name,
        )
        params: dict[str, Any] = {self._ids.create_param: sent_id}
        if request.type is OrderType.LIMIT:
            params["timeInForce"] = request.time_in_force.value
        raw = await self._call(
            self._ex.create_order(
                request.symbol,
                request.type.value,
                request.side.value,
                format(amount, "f"),
                format(price, "f") if price is not None else None,
                params,
            ),
            creating=True,
        )
        try:
            return await self._order(raw, m, request.client_order_id)
        except ExchangeError as exc:  # it is placed: never report that as a failure
            message = f"order {request.client_order_id} placed, but reading its fills failed"
            retry_after = getattr(exc, "retry_after", None)
            if order_id := str(raw.get("id") or ""):  # named: a retry reads it, never creates
                raise OrderAcceptedUnread(
                    f"{message} (exchange id {order_id}): {exc}",
                    order_id=order_id,
                    retry_after=retry_after,
                ) from None
            raise OrderStatusUnknown(f"{message}: {exc}", retry_after=retry_after) from None

    async def fetch_order(
        self, symbol: str, client_order_id: str, *, order_id: str | None = None
    ) -> Order:
        m = await self._market(symbol)
        if order_id is not None:
            return await self._by_id(m, order_id, client_order_id)
        raw = await self._call(
            self._ex.fetch_order(
                None, symbol, {self._ids.lookup_param: self._sent(client_order_id)}
            )
        )
        return await self._order(raw, m, client_order_id)

    async def _by_id(
        self, m: MarketInfo, order_id: str, client_order_id: str | None = None
    ) -> Order:
        raw = await self._call(self._ex.fetch_order(order_id, m.symbol))
        return await self._order(
            raw, m, client_order_id or self._our_id(str(raw.get("clientOrderId") or ""))
        )

    async def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        order = await self.fetch_order(symbol, client_order_id)
        if order.is_final:
            return order
        # It may fill or expire in between (then the cancel is refused): the lookup below
        # says how it ended either way.
        with contextlib.suppress(OrderNotFound, OrderRejected):
            await self._call(
                self._ex.cancel_order(
                    None, symbol, {self._ids.lookup_param: self._sent(client_order_id)}
                )
            )
        order = await self.fetch_order(symbol, client_order_id)
        if not order.is_final:  # e.g. still pending cancel: the activity's retry asks again
            raise RetryableExchangeError(
                f"cancel of {client_order_id} on {symbol} has not taken effect yet"
            )
        return order

    def exchange_client_id(self, client_order_id: str) -> str:
        return self._ids.to_exchange(client_order_id)

    def _our_id(self, sent: str) -> str:
        return self._ours.get(sent, sent)

    async def fetch_open_orders(self, symbol: str, *, reconcile: bool = False) -> list[Order]:
        m = await self._market(symbol)
        if reconcile:  # the validator's: on its client and budget, as the listing
            rows = await self._audited(self._audit.fetch_open_orders(symbol))
            return [self._audited_order(raw, m) for raw in rows]
        rows = await self._call(self._ex.fetch_open_orders(symbol))
        return [
            await self._order(raw, m, self._our_id(str(raw.get("clientOrderId") or "")))
            for raw in rows
        ]

    async def fetch_all_open_orders(self) -> list[Order] | None:
        if self._listed_per_symbol:
            return None
        markets = await self.load_markets()
        page = listing_page(self.name)
        rows = await self._audited(self._all_open_orders(page))
        if rows is None:
            self._listed_per_symbol = True
            return None
        if not listing_complete(self.name, len(rows)):  # a full page: more may follow
            log.info("%s: %d open orders, a full page: per symbol this check", self.name, page)
            return None
        out = []
        for raw in rows:
            m = markets.get(str(raw.get("symbol")))
            if m is None:  # a market the trader does not load (not spot): not its order
                continue
            out.append(self._audited_order(raw, m))
        return out

    def _audited_order(self, raw: dict[str, Any], m: MarketInfo) -> Order:
        """An open order as a reconciliation read sees it: without fees (reading them could
        cost requests on the order path's client)."""
        ours = self._our_id(str(raw.get("clientOrderId") or ""))
        return cv.order(raw, m, fee=Decimal(0), fee_base=Decimal(0), client_order_id=ours)

    async def _audited(self, call: Awaitable[T]) -> T:
        """A reconciliation read on its own client (its bucket refills while it is idle:
        ``ccxt_throttle``, sized to one check: ``_fit_audit_bucket``)."""
        return await self._call(call, client=self._audit)

    async def _all_open_orders(self, page: int | None) -> list[dict[str, Any]] | None:
        try:
            rows: list[dict[str, Any]] = await self._audit.fetch_open_orders(None, None, page)
        except ccxt.ArgumentsRequired:  # this exchange lists them per symbol only
            return None
        return rows

    async def _fit_audit_bucket(self) -> None:
        """Size the validator client's bucket to one check's reads, priced by ccxt, and
        fill it: after an interval a check's requests pass together instead of each
        waiting for the last one's cost (Kraken at 5 %: 20 s a unit, balances and listing
        3 each, 40 s, past the check's heartbeat timeout). The long-run rate is unchanged."""
        cost = await request_cost(self._audit, self._audit.fetch_balance)
        if not self._listed_per_symbol:
            page = listing_page(self.name)
            cost += await request_cost(
                self._audit, lambda: self._audit.fetch_open_orders(None, None, page)
            )
        ccxt_throttle.resize(self._audit, cost)

    async def fetch_recent_orders(self, symbol: str, *, since_ms: int) -> list[Order]:
        m = await self._market(symbol)
        return await recent_orders(
            self._ex,
            call=self._call,
            fees=self._fees,
            market=m,
            since_ms=since_ms,
            ours=self._our_id,
            by_id=lambda order_id: self._by_id(m, order_id),
        )

    async def _order(self, raw: dict[str, Any], m: MarketInfo, client_order_id: str) -> Order:
        fee, fee_base = await self._fees.of(raw, m)
        return cv.order(raw, m, fee=fee, fee_base=fee_base, client_order_id=client_order_id)

    async def fetch_balance(self) -> dict[str, Decimal]:
        return {c: b.total for c, b in (await self.fetch_balances()).items()}

    async def fetch_balances(self, *, reconcile: bool = False) -> dict[str, Balance]:
        if reconcile:  # markets first: loaded by the order client, once, for all three
            await self.load_markets()
            raw = await self._audited(self._audit.fetch_balance())
        else:
            raw = await self._call(self._ex.fetch_balance())
        return cv.balances(raw)

    async def close(self) -> None:
        await self._ex.close()
        await self._md.close()
        await self._audit.close()
        await self._books.close()


async def _sent_at(client: Any) -> int:
    """The stamp of a ticker request about to go out on ``client`` (ms): taken at its
    turn in its bucket (``until_free``), so an answer held up in flight (slow) never looks
    newer than a stream frame that arrived meanwhile (the hub orders prices by ``ts_ms``),
    and one held in the bucket never looks older than a request sent after it was asked."""
    await ccxt_throttle.until_free(client)
    return int(time.time() * 1000)
