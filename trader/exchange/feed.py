"""Price feeds the paper exchange derives its order book from."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from trader.core.errors import BadSymbol
from trader.core.market import Candle, MarketInfo


class PriceFeed(Protocol):
    """Mid prices over time for a set of markets."""

    @property
    def symbols(self) -> list[str]: ...

    def market(self, symbol: str) -> MarketInfo:
        """Raises BadSymbol for an unknown symbol."""
        ...

    def mid(self, symbol: str, ts_ms: int) -> Decimal: ...

    def quote_volume(self, symbol: str, ts_ms: int) -> Decimal: ...

    def candles(self, symbol: str, *, since_ms: int, until_ms: int, limit: int) -> list[Candle]:
        """One-minute candles in [since_ms, until_ms], oldest first, at most ``limit``."""
        ...


class MarketTable:
    """The markets a feed lists, and the lookup every feed shares."""

    _markets: dict[str, MarketInfo]
    _source = "this feed"
    """Named in the error for an unknown symbol."""

    @property
    def symbols(self) -> list[str]:
        return sorted(self._markets)

    def market(self, symbol: str) -> MarketInfo:
        """Raises BadSymbol (naming the markets there are) for an unknown symbol."""
        try:
            return self._markets[symbol]
        except KeyError:
            raise BadSymbol(
                f"unknown symbol {symbol!r} on {self._source}; available: "
                f"{', '.join(self.symbols[:20]) or 'none'}"
            ) from None


class StaticFeed(MarketTable):
    """Prices set by hand (tests, demos): the price is whatever was set last."""

    def __init__(
        self, markets: dict[str, MarketInfo], *, quote_volume: Decimal = Decimal(10_000_000)
    ) -> None:
        self._markets = dict(markets)
        self._prices: dict[str, Decimal] = {}
        self._volume = quote_volume

    def set_price(self, symbol: str, price: Decimal) -> None:
        self.market(symbol)
        self._prices[symbol] = price

    def mid(self, symbol: str, ts_ms: int) -> Decimal:
        self.market(symbol)
        return self._prices[symbol]

    def quote_volume(self, symbol: str, ts_ms: int) -> Decimal:
        return self._volume

    def candles(self, symbol: str, *, since_ms: int, until_ms: int, limit: int) -> list[Candle]:
        price = self.mid(symbol, until_ms)
        start = since_ms - since_ms % 60_000
        minutes = range(start, until_ms + 1, 60_000)[-limit:] if limit > 0 else range(0)
        return [Candle(ts_ms=ts, open=price, high=price, low=price, close=price) for ts in minutes]
