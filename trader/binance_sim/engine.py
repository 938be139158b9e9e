"""The exchange behind the HTTP layer: Binance request parameters in, paper orders out.

Matching, fees, balances and persistence are the ``PaperExchange``'s (one engine, not two);
this module adds what Binance has and the paper exchange does not: symbol ids, Binance's
filter checks and error codes, re-matching before funds are counted, order/trade queries,
and how soon those queries see a fresh order (``Consistency``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation

from trader.binance_sim import errors as e
from trader.binance_sim.consistency import Consistency
from trader.binance_sim.shapes import MAX_NOTIONAL, MAX_PRICE, MAX_QTY, market_id
from trader.core import errors
from trader.core.market import (
    MarketInfo,
    Order,
    OrderRequest,
    OrderSide,
    OrderType,
    TimeInForce,
)
from trader.core.sizing import round_down
from trader.exchange.feed import PriceFeed
from trader.exchange.paper import PaperExchange
from trader.exchange.paper_store import PaperFill

_CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")


def decimal_param(params: Mapping[str, str], name: str) -> Decimal | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise e.bad_param(name) from None
    if not value.is_finite():
        raise e.bad_param(name)
    return value


def int_param(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise e.bad_param(name) from None


class SimEngine:
    def __init__(
        self,
        feed: PriceFeed,
        exchange: PaperExchange,
        clock: Callable[[], int],
        consistency: Consistency | None = None,
    ) -> None:
        self.feed = feed
        self.exchange = exchange
        self.clock = clock
        self.consistency = consistency or Consistency()
        self._ids = {market_id(s): s for s in feed.symbols}

    # --- symbols ---------------------------------------------------------------------
    def symbol(self, raw: str | None) -> str:
        """The unified symbol of a Binance id (``BTCUSDT``); a unified one is accepted too."""
        if not raw:
            raise e.mandatory("symbol")
        if raw in self._ids:
            return self._ids[raw]
        if raw in self._ids.values():
            return raw
        raise e.invalid_symbol()

    # --- orders ------------------------------------------------------------------------
    async def place(self, p: Mapping[str, str]) -> tuple[Order, list[PaperFill]]:
        symbol = self.symbol(p.get("symbol"))
        market = self.feed.market(symbol)
        side = {"BUY": OrderSide.BUY, "SELL": OrderSide.SELL}.get(p.get("side", ""))
        if side is None:
            raise e.bad_value("Invalid side.", -1117) if p.get("side") else e.mandatory("side")
        type_ = {"LIMIT": OrderType.LIMIT, "MARKET": OrderType.MARKET}.get(p.get("type", ""))
        if type_ is None:
            raise e.bad_value("Invalid orderType.", -1116) if p.get("type") else e.mandatory("type")
        tif = TimeInForce.IOC
        if type_ is OrderType.LIMIT:
            tif_raw = p.get("timeInForce") or ""
            if not tif_raw:
                raise e.mandatory("timeInForce")
            if tif_raw not in ("GTC", "IOC"):  # FOK is not simulated
                raise e.bad_value("Invalid timeInForce.", -1115)
            tif = TimeInForce(tif_raw)
        price = decimal_param(p, "price") if type_ is OrderType.LIMIT else None
        if type_ is OrderType.LIMIT and price is None:
            raise e.mandatory("price")
        cid = p.get("newClientOrderId") or f"sim{uuid.uuid4().hex[:22]}"
        if not _CLIENT_ID.match(cid):
            raise e.bad_param("newClientOrderId")
        # Before filters and funds: the retry of an accepted order (whose price check may
        # now differ and whose cost is already spent) must hear "duplicate", then look it up.
        # Binance refuses it only while that order is open: a final one's id is taken again.
        if await self._duplicate(cid):
            raise e.duplicate_order()
        bid, ask = self.exchange.top_of_book(symbol)
        touch = ask if side is OrderSide.BUY else bid
        amount = decimal_param(p, "quantity")
        quote_qty = decimal_param(p, "quoteOrderQty")
        if amount is None and quote_qty is not None and type_ is OrderType.MARKET:
            amount = self._quote_to_base(market, side, quote_qty, touch)
        if amount is None:
            raise e.mandatory("quantity")
        self._check_filters(market, amount, price, touch)
        await self._check_free(market, side, amount, price)
        request = OrderRequest(
            symbol=symbol,
            side=side,
            type=type_,
            amount=amount,
            price=price,
            time_in_force=tif,
            client_order_id=cid,
        )
        try:
            order = await self.exchange.create_order(request)
        except errors.DuplicateClientOrderId:
            raise e.duplicate_order() from None
        except errors.InsufficientFunds:
            raise e.insufficient_balance() from None
        except errors.InvalidOrder as exc:
            raise e.bad_value(f"Filter failure: {exc}", -1013) from None
        self.consistency.accepted(order.id)
        return order, self.fills_of(order)

    async def _duplicate(self, cid: str) -> bool:
        earlier = self.exchange.lookup(cid)
        if earlier is None:
            return False
        if not self.exchange.reuse_final_client_ids:
            return True
        if not earlier.is_final:  # a resting order may have filled since it was stored
            earlier = await self.exchange.fetch_order(earlier.symbol, cid, order_id=earlier.id)
        return not earlier.is_final

    def _quote_to_base(
        self, m: MarketInfo, side: OrderSide, quote_qty: Decimal, touch: Decimal
    ) -> Decimal:
        """Whole lot steps for ``quoteOrderQty``: a buy spends at most that through the levels
        it walks; a sell receives about that at the touch."""
        if side is OrderSide.SELL:
            return round_down(quote_qty / touch, m.amount_step)
        amount, left = Decimal(0), quote_qty
        for price, qty in self.exchange.book_levels(m.symbol, side):
            take = min(qty, round_down(left / price, m.amount_step))
            amount, left = amount + take, left - take * price
            if take < qty:
                break
        return amount

    @staticmethod
    def _check_filters(
        m: MarketInfo, amount: Decimal, price: Decimal | None, touch: Decimal
    ) -> None:
        if price is not None and (
            price < m.price_tick or price > MAX_PRICE or price % m.price_tick != 0
        ):
            raise e.filter_failure("PRICE_FILTER")
        if (
            amount < max(m.min_amount, m.amount_step)
            or amount > MAX_QTY
            or amount % m.amount_step != 0
        ):
            raise e.filter_failure("LOT_SIZE")
        notional = amount * (price if price is not None else touch)
        if notional < m.min_cost or (price is not None and notional > MAX_NOTIONAL):
            raise e.filter_failure("NOTIONAL")  # the maximum applies to limits only

    async def _check_free(
        self, m: MarketInfo, side: OrderSide, amount: Decimal, price: Decimal | None
    ) -> None:
        """Funds held by resting orders are not available (after re-matching them)."""
        buy = side is OrderSide.BUY
        need = self.exchange.buy_cost(m.symbol, amount, price) if buy else amount
        asset = m.quote if buy else m.base
        if need > (await self.free_balances()).get(asset, (Decimal(0), Decimal(0)))[0]:
            raise e.insufficient_balance()

    async def find(self, symbol: str, p: Mapping[str, str], *, for_cancel: bool = False) -> Order:
        """The order named by ``orderId`` or ``origClientOrderId`` (the newest the lookup
        lag lets it see: a lagging replica does not have the newest yet), re-matched."""
        order_id = int_param(p, "orderId")
        cid = p.get("origClientOrderId")
        if order_id is None and not cid:
            raise e.BinanceError(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        missing = e.unknown_order() if for_cancel else e.order_missing()
        if cid:
            named = [
                o
                for o in self.exchange.orders_with_client_id(cid)
                if order_id is None or int(o.id) == order_id
            ]
        else:
            named = [o for o in [self.exchange.lookup_id(str(order_id))] if o is not None]
        seen = [o for o in named if self.consistency.seen_by_lookup(o.id)]
        if not seen or seen[-1].symbol != symbol:
            raise missing
        found = seen[-1]
        return await self.exchange.fetch_order(symbol, found.client_order_id, order_id=found.id)

    async def cancel(self, symbol: str, p: Mapping[str, str]) -> Order:
        order = await self.find(symbol, p, for_cancel=True)
        if order.is_final:  # Binance: a filled or cancelled order is unknown to cancel
            raise e.unknown_order()
        return await self.exchange.cancel_order(symbol, order.client_order_id, order_id=order.id)

    async def rematch(self) -> list[Order]:
        """Match resting orders against the current price; the ones still open."""
        return await self.exchange.refresh_open_orders()

    def orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self.exchange.all_orders() if symbol is None or o.symbol == symbol]

    def fills(self, symbol: str | None = None) -> list[PaperFill]:
        return self.exchange.fills(symbol)

    def fills_of(self, order: Order) -> list[PaperFill]:
        return self.exchange.fills(
            order.symbol, client_order_id=order.client_order_id, order_id=order.id
        )

    def listed(self, orders: list[Order]) -> list[Order]:
        """What the list endpoints show of these orders (the list lag)."""
        return [o for o in orders if self.consistency.seen_by_lists(o.id)]

    def listed_fills(self, symbol: str) -> list[PaperFill]:
        return [f for f in self.fills(symbol) if self.consistency.seen_by_lists(f.order_id)]

    # --- balances ------------------------------------------------------------------------
    async def free_balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        """asset -> (free, locked); locked is what resting orders may still spend (the paper
        exchange's own free balance, which re-matches them first)."""
        return {
            a: (b.free, b.total - b.free) for a, b in (await self.exchange.fetch_balances()).items()
        }
