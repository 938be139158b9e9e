"""An order's fees valued in quote, as ``Order`` wants them (``ccxt_convert.split_fees``).

They come from the order itself, else from its trades (Binance's GET order carries none); a
third currency (BNB) is valued at its last price in quote. They are remembered per order id
while its fill does not change: an order seen again (wait, cancel, reconcile) costs no request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

from trader.core.errors import BadSymbol, RetryableExchangeError
from trader.core.market import MarketInfo, Ticker
from trader.exchange import ccxt_convert as cv

_REMEMBERED = 4096
"""Orders whose fees are remembered: only recent orders are asked about again."""


class OrderFees:
    """Reads and remembers order fees through the adapter's order-path client."""

    def __init__(
        self,
        client: Any,
        *,
        call: Callable[[Awaitable[Any]], Awaitable[Any]],
        markets: Callable[[], Awaitable[dict[str, MarketInfo]]],
        tickers: Callable[[list[str]], Awaitable[dict[str, Ticker]]],
    ) -> None:
        self._ex, self._call, self._markets, self._tickers = client, call, markets, tickers
        self._seen: dict[str, tuple[Decimal, Decimal, Decimal]] = {}  # id -> filled, fees

    async def of(
        self,
        raw: Mapping[str, Any],
        m: MarketInfo,
        *,
        trades: list[Mapping[str, Any]] | None = None,
    ) -> tuple[Decimal, Decimal]:
        """``(fee, fee_base)`` of a ccxt order on market ``m``; ``trades``: the order's trades
        when the caller has listed them already (else they are read when needed)."""
        filled = cv.dec(raw.get("filled"), Decimal(0)) or Decimal(0)
        order_id = str(raw.get("id") or "")
        seen = self._seen.get(order_id)
        if seen is not None and seen[0] == filled:
            return seen[1], seen[2]
        fees = cv.fee_items(raw)
        if filled > 0 and not fees:  # e.g. Binance GET order: fees are on the trades
            fees = await self._trade_fees(order_id, m.symbol, filled, trades)
        rates = await self._rates({c for c, _ in fees} - {m.base, m.quote}, m.quote)
        fee, fee_base = cv.split_fees(
            fees, base=m.base, quote=m.quote, average=cv.average(raw), rates=rates
        )
        if order_id:
            self._seen[order_id] = (filled, fee, fee_base)
            if len(self._seen) > _REMEMBERED:
                del self._seen[next(iter(self._seen))]
        return fee, fee_base

    async def _trade_fees(
        self, order_id: str, symbol: str, filled: Decimal, listed: list[Mapping[str, Any]] | None
    ) -> list[tuple[str, Decimal]]:
        # Trades listed short of the fill (not all published yet, or a page cut off) would
        # undercount the fees for good: a fee seen later without more fill is never applied.
        trades: Any
        if listed is not None:
            trades = listed
        elif self._ex.has.get("fetchOrderTrades"):
            trades = await self._call(self._ex.fetch_order_trades(order_id, symbol))
        else:
            trades = await self._call(
                self._ex.fetch_my_trades(symbol, None, None, {"orderId": order_id})
            )
        covered = sum(
            (cv.dec(t.get("amount"), Decimal(0)) or Decimal(0) for t in trades), Decimal(0)
        )
        if covered < filled:
            raise RetryableExchangeError(
                f"order {order_id} on {symbol}: its trades cover "
                f"{covered} of {filled} filled; fees not known yet"
            )
        return cv.fee_items(trades)

    async def _rates(self, currencies: set[str], quote: str) -> dict[str, Decimal]:
        """Price in ``quote`` of each fee currency that is neither base nor quote (BNB)."""
        markets = await self._markets()
        pairs = {c: f"{c}/{quote}" for c in currencies if f"{c}/{quote}" in markets}
        if not pairs:
            return {}
        tickers: dict[str, Ticker] = {}
        with contextlib.suppress(BadSymbol):  # delisted since load: no price (split_fees warns)
            tickers = await self._tickers(sorted(pairs.values()))
        return {c: tickers[s].last for c, s in pairs.items() if s in tickers}
