"""Dry-run (``GLOBAL_TRADING=false``) and the shadow of ``FSM_MODE=both``: real market data,
simulated orders.

``DryRunExchange`` reads markets, tickers and candles from the real exchange (a
``CcxtExchange``, or in ``both`` mode whatever the primary trades on, the paper simulator
too) and sends every order to a ``PaperExchange`` whose book is derived from those live
tickers (``LiveTickerFeed``). No order, cancel or balance request ever reaches
the real exchange; ``simulated = True`` marks everything it does as simulated (Web UI
details, logs, notifications).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal

from trader.core.errors import BadSymbol
from trader.core.market import Balance, Candle, MarketInfo, Order, OrderRequest, Ticker
from trader.exchange.feed import MarketTable
from trader.exchange.paper import PaperExchange
from trader.exchange.port import Exchange, PacedTickers

Prices = Callable[[str], Awaitable[Ticker]]
"""Where a shadow's book takes a symbol's fresh price instead of asking the exchange (the
market-data hub the primary polls: ``MarketHub.shared_ticker``)."""


class LiveTickerFeed(MarketTable):
    """A ``PriceFeed`` whose prices are the latest real tickers (updated on every fetch)."""

    _source = "the live exchange"

    def __init__(self) -> None:
        self._markets: dict[str, MarketInfo] = {}
        self._tickers: dict[str, Ticker] = {}

    def set_markets(self, markets: dict[str, MarketInfo]) -> None:
        self._markets = dict(markets)

    def update(self, tickers: dict[str, Ticker]) -> None:
        self._tickers.update(tickers)

    def _ticker(self, symbol: str) -> Ticker:
        self.market(symbol)
        try:
            return self._tickers[symbol]
        except KeyError:  # the dry-run exchange always fetches one before matching
            raise BadSymbol(f"no live ticker for {symbol} yet") from None

    def mid(self, symbol: str, ts_ms: int) -> Decimal:
        return self._ticker(symbol).mid

    def quote_volume(self, symbol: str, ts_ms: int) -> Decimal:
        return self._ticker(symbol).quote_volume

    def candles(self, symbol: str, *, since_ms: int, until_ms: int, limit: int) -> list[Candle]:
        raise NotImplementedError("DryRunExchange reads candles from the real exchange")


class DryRunExchange:
    """Market data from ``live``; orders matched by ``paper`` against the live prices."""

    simulated = True

    def __init__(
        self,
        live: Exchange,
        paper: PaperExchange,
        feed: LiveTickerFeed,
        *,
        prices: Prices | None = None,
    ) -> None:
        self.live, self.paper, self.feed = live, paper, feed
        self.prices = prices
        self.name = live.name
        self._markets: dict[str, MarketInfo] | None = None

    def __repr__(self) -> str:
        return f"DryRunExchange({self.live!r})"

    async def load_markets(self) -> dict[str, MarketInfo]:
        markets = await self.live.load_markets()
        if markets is not self._markets:  # loaded once per process: copied into the feed once
            self.feed.set_markets(markets)
            self._markets = markets
        return markets

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        await self.load_markets()
        tickers = await self.live.fetch_tickers(symbols)
        self.feed.update(tickers)
        return tickers

    async def tickers_ready(self) -> None:
        """As ``live``'s where it has one (``PacedTickers``): the hub's poll waits for the
        live limiter before it chooses its symbols."""
        if isinstance(self.live, PacedTickers):
            await self.live.tickers_ready()

    async def _refresh(self, symbol: str) -> None:
        """Take a fresh real ticker before the paper book matches anything: from
        ``prices`` (no request of its own) when given, else asked of ``live``."""
        if self.prices is None:
            await self.fetch_tickers([symbol])
            return
        await self.load_markets()
        self.feed.update({symbol: await self.prices(symbol)})

    async def fetch_ohlcv(self, symbol: str, *, since_ms: int, limit: int) -> list[Candle]:
        return await self.live.fetch_ohlcv(symbol, since_ms=since_ms, limit=limit)

    async def create_order(self, request: OrderRequest) -> Order:
        await self._refresh(request.symbol)
        return await self.paper.create_order(request)

    async def fetch_order(
        self, symbol: str, client_order_id: str, *, order_id: str | None = None
    ) -> Order:
        await self._refresh(symbol)
        return await self.paper.fetch_order(symbol, client_order_id, order_id=order_id)

    async def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        await self._refresh(symbol)
        return await self.paper.cancel_order(symbol, client_order_id)

    def exchange_client_id(self, client_order_id: str) -> str:
        return self.paper.exchange_client_id(client_order_id)

    async def fetch_open_orders(self, symbol: str, *, reconcile: bool = False) -> list[Order]:
        await self._refresh(symbol)
        return await self.paper.fetch_open_orders(symbol)

    async def fetch_all_open_orders(self) -> list[Order] | None:
        # Matched against the books as they were last refreshed: the orders are paper ones.
        return await self.paper.fetch_all_open_orders()

    async def fetch_recent_orders(self, symbol: str, *, since_ms: int) -> list[Order]:
        await self._refresh(symbol)
        return await self.paper.fetch_recent_orders(symbol, since_ms=since_ms)

    async def fetch_balance(self) -> dict[str, Decimal]:
        return await self.paper.fetch_balance()

    async def fetch_balances(self, *, reconcile: bool = False) -> dict[str, Balance]:
        return await self.paper.fetch_balances()

    async def close(self) -> None:
        await self.live.close()
        await self.paper.close()

    async def close_own(self) -> None:
        """Close the simulator only: ``live`` is shared (``FSM_MODE=both``) and closed by
        its owner."""
        await self.paper.close()
