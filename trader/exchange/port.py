"""The ``Exchange`` port: what the activities need from any exchange.

Implementations: ``PaperExchange`` (an in-process simulator persisted in SQLite),
``CcxtExchange`` (any ccxt exchange) and ``DryRunExchange`` (live market data, paper orders).
Implementations raise only ``trader.core.errors`` exceptions.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol, runtime_checkable

from trader.core.market import Balance, Candle, MarketInfo, Order, OrderRequest, Ticker


class Exchange(Protocol):
    """An exchange account, seen through unified symbols (``BTC/USDT``)."""

    name: str
    simulated: bool
    """True when orders never reach a real exchange (paper, dry-run)."""

    async def load_markets(self) -> dict[str, MarketInfo]:
        """All markets with precision and minimums (cached by implementations)."""
        ...

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, Ticker]:
        """Top of book for many symbols in one request.

        Raises:
            BadSymbol: a symbol does not exist.
        """
        ...

    async def fetch_ohlcv(self, symbol: str, *, since_ms: int, limit: int) -> list[Candle]:
        """Candles (1 minute) from ``since_ms``, oldest first, at most ``limit``."""
        ...

    async def create_order(self, request: OrderRequest) -> Order:
        """Place an order.

        Raises:
            DuplicateClientOrderId: an order with this client order id exists already (on
                Binance: is open; a final order's id is accepted again).
            InsufficientFunds, InvalidOrder: the order was refused.
            OrderAcceptedUnread: accepted as ``order_id``, but what filled could not be read.
            RetryableExchangeError: outcome unknown; look the client id up before retrying.
        """
        ...

    async def fetch_order(
        self, symbol: str, client_order_id: str, *, order_id: str | None = None
    ) -> Order:
        """The order with this client order id (the newest, where a venue takes a final
        order's id again), or the one with the exchange's ``order_id`` when given.

        Raises:
            OrderNotFound: no such order, or the exchange's query does not show it yet
                (Binance's can lag a fresh order by seconds: not proof of absence).
        """
        ...

    async def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        """Cancel if still open; return the order's final state either way.

        Raises:
            OrderNotFound: no such order.
        """
        ...

    async def fetch_open_orders(self, symbol: str, *, reconcile: bool = False) -> list[Order]:
        """The symbol's open orders; ``reconcile``: on the reconciliation budget and without
        fees, as ``fetch_all_open_orders``."""
        ...

    async def fetch_all_open_orders(self) -> list[Order] | None:
        """Every open order of the account (all symbols) in one request, for reconciliation:
        paid from a request budget of its own, never the order path's, and without fees
        (zero: reading them could cost more requests). None where the exchange lists open
        orders only per symbol (then ``fetch_open_orders`` each)."""
        ...

    def exchange_client_id(self, client_order_id: str) -> str:
        """The form of our client order id that this exchange shows, to whoever lists its
        orders (OKX: a digest; mapped back only for orders this process placed)."""
        ...

    async def fetch_recent_orders(self, symbol: str, *, since_ms: int) -> list[Order]:
        """Every order of the symbol placed at or after ``since_ms`` (exchange time, epoch
        ms), open or final, oldest first, as the exchange's order and trade lists show them.

        An order the lists show only through its trades (the order list lagging behind, and
        the order not readable by id yet) has an empty ``client_order_id``: whose it is
        cannot be told yet.
        """
        ...

    async def fetch_balance(self) -> dict[str, Decimal]:
        """Total balance per currency (values are ``Decimal``)."""
        ...

    async def fetch_balances(self, *, reconcile: bool = False) -> dict[str, Balance]:
        """Free and total balance per currency, from one account request; ``reconcile``:
        on the reconciliation budget (the validator's, as ``fetch_all_open_orders``),
        never the order path's."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class BookStream(Protocol):
    """An exchange that pushes top-of-book updates over a stream (``CcxtExchange`` with
    ccxt.pro); the market hub streams from it first and polls ``fetch_tickers`` only when
    the stream is down or silent."""

    streams: bool
    """False: the stream is switched off (``MARKET_STREAMS``) or the exchange has none."""

    async def watch_books(
        self, symbols: list[str], *, connection: int = 0
    ) -> dict[str, Ticker | None]:
        """Wait for the next update of any of ``symbols`` (one subscription of the list on
        stream connection ``connection``); every symbol whose book changed since the
        last call (None: its book is empty or crossed now, no price).

        Raises:
            RetryableExchangeError: the connection failed or dropped.
        """
        ...

    async def unwatch_books(self, symbols: list[str]) -> None:
        """End the subscription of this list."""
        ...

    async def reconnect_books(self, connection: int) -> None:
        """Close stream connection ``connection``; the next watch on it dials anew."""
        ...


@runtime_checkable
class PacedTickers(Protocol):
    """An exchange whose rate limiter may hold a ``fetch_tickers`` request back (ccxt's
    bucket): the market hub waits for it before it chooses the symbols of its next poll."""

    async def tickers_ready(self) -> None:
        """Return at a ``fetch_tickers`` request's turn in the limiter (queue order, no
        debt owed), taking nothing from it."""
        ...
