"""The paper exchange's book and matching: a few levels of fixed quote liquidity around the
feed's mid price, what an order may cost on it, and taking from it with per-level fills.

``PaperBook`` is ``PaperExchange``'s base; the exchange sets the attributes it declares.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from trader.core.market import MarketInfo, Order, OrderSide, OrderStatus, OrderType, TimeInForce
from trader.core.sizing import round_down, round_up
from trader.exchange.feed import PriceFeed
from trader.exchange.paper_store import PaperFill, PaperStore

_BPS = Decimal(10_000)


class PaperFaults(BaseModel):
    """Fault injection (all off by default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    create_latency_s: float = 0
    """Sleep before accepting an order."""
    accept_then_hang_s: float = 0
    """Commit the order, then sleep before answering: "accepted, response lost"."""
    fail_creates: int = 0
    """The first N creates in this process fail (retryable) before reaching the book."""
    max_fill_ratio: Decimal | None = None
    """Cap on the filled fraction of every order (forces partial fills; 0: nothing fills)."""
    reject_creates_with: str | None = None
    """"InsufficientFunds" or "InvalidOrder": every create is refused so."""
    fail_lookups: int = 0
    """The first N order lookups/cancels in this process fail (retryable)."""


class PaperBook:
    """The book derived from ``feed`` (spread, ``depth_levels`` levels) and matching on it."""

    feed: PriceFeed
    spread_bps: Decimal
    depth_levels: int
    level_liquidity_quote: Decimal
    fee_rate: Decimal | None
    fee_in_received_asset: bool
    faults: PaperFaults | None
    _clock: Callable[[], int]

    def _book_top(self, symbol: str, now: int) -> tuple[MarketInfo, Decimal, Decimal]:
        market = self.feed.market(symbol)
        mid = self.feed.mid(symbol, now)
        half = mid * self.spread_bps / _BPS / 2
        bid = max(round_down(mid - half, market.price_tick), market.price_tick)
        ask = max(round_up(mid + half, market.price_tick), bid + market.price_tick)
        return market, bid, ask

    def top_of_book(self, symbol: str) -> tuple[Decimal, Decimal]:
        """(bid, ask) now."""
        _, bid, ask = self._book_top(symbol, self._clock())
        return bid, ask

    def book_levels(self, symbol: str, side: OrderSide) -> list[tuple[Decimal, Decimal]]:
        """(price, base amount) a taker on ``side`` would meet, best first (asks for a buy)."""
        return self._levels(self.feed.market(symbol), side, self._clock())

    def buy_cost(self, symbol: str, amount: Decimal, price: Decimal | None) -> Decimal:
        """The most quote a buy of ``amount`` can spend now, fee included unless it is paid
        in the base: at most ``price`` per unit for a limit, the book walked for a market."""
        market = self.feed.market(symbol)
        fee = 0 if self.fee_in_received_asset else self._fee(market)
        if price is not None:
            return amount * price * (1 + fee)
        cost, left = Decimal(0), amount
        for level_price, qty in self._levels(market, OrderSide.BUY, self._clock()):
            take = min(qty, left)
            cost, left = cost + take * level_price, left - take
            if left <= 0:
                break
        return cost * (1 + fee)

    def held(self, open_orders: list[Order]) -> dict[str, Decimal]:
        """currency -> what these resting orders may still spend (not free for new ones)."""
        out: dict[str, Decimal] = {}
        for o in open_orders:
            m, left = self.feed.market(o.symbol), o.amount - o.filled
            if o.side is OrderSide.BUY:
                out[m.quote] = out.get(m.quote, Decimal(0)) + self.buy_cost(o.symbol, left, o.price)
            else:
                out[m.base] = out.get(m.base, Decimal(0)) + left
        return out

    def _fee(self, market: MarketInfo) -> Decimal:
        return self.fee_rate if self.fee_rate is not None else market.taker_fee

    def _levels(
        self, market: MarketInfo, side: OrderSide, now: int
    ) -> list[tuple[Decimal, Decimal]]:
        """(price, base amount) per level, best first; levels ~2 bps apart."""
        _, bid, ask = self._book_top(market.symbol, now)
        step = max(round_up(ask * 2 / _BPS, market.price_tick), market.price_tick)
        levels = []
        for i in range(self.depth_levels):
            price = (
                ask + step * i if side is OrderSide.BUY else max(bid - step * i, market.price_tick)
            )
            levels.append(
                (price, round_down(self.level_liquidity_quote / price, market.amount_step))
            )
        return levels

    def _match(self, db: sqlite3.Connection, order: Order) -> Order:
        """Take what crosses from the current book; settle balances; final state for IOC."""
        market, before = self.feed.market(order.symbol), order
        remaining = order.amount - order.filled
        cap = self.faults.max_fill_ratio if self.faults else None
        if cap is not None:
            remaining = min(
                remaining, round_down(order.amount * cap, market.amount_step) - order.filled
            )
        qty_total, cost_total = Decimal(0), Decimal(0)
        rate, now = self._fee(market), self._clock()
        in_base = self.fee_in_received_asset and order.side is OrderSide.BUY
        fee_quote, fee_base = Decimal(0), Decimal(0)
        for price, qty in self._levels(market, order.side, now):
            if remaining <= 0:
                break
            limit = order.price
            crosses = (
                order.type is OrderType.MARKET
                or limit is None
                or (price <= limit if order.side is OrderSide.BUY else price >= limit)
            )
            if not crosses:
                break
            take = min(qty, remaining)
            qty_total += take
            cost_total += take * price
            remaining -= take
            # One fill per book level taken, each with its own commission (Binance "fills").
            fill_fee = take * rate if in_base else take * price * rate
            fee_base += fill_fee if in_base else 0
            fee_quote += fill_fee * price if in_base else fill_fee
            PaperStore.insert_fill(
                db,
                PaperFill(
                    order_id=order.id,
                    client_order_id=order.client_order_id,
                    symbol=order.symbol,
                    side=order.side,
                    price=price,
                    amount=take,
                    fee=fill_fee,
                    fee_currency=market.base if in_base else market.quote,
                    ts_ms=now,
                ),
            )
        if qty_total > 0:
            if order.side is OrderSide.BUY:
                # With the fee in base, the quote pays the cost only and less base arrives.
                PaperStore.add_balance(
                    db, market.quote, -(cost_total + (0 if in_base else fee_quote))
                )
                PaperStore.add_balance(db, market.base, qty_total - fee_base)
            else:
                PaperStore.add_balance(db, market.base, -qty_total)
                PaperStore.add_balance(db, market.quote, cost_total - fee_quote)
            filled = order.filled + qty_total
            old_cost = (order.average or Decimal(0)) * order.filled
            order = order.model_copy(
                update={
                    "filled": filled,
                    "average": (old_cost + cost_total) / filled,
                    "fee": order.fee + fee_quote,
                    "fee_base": order.fee_base + fee_base,
                }
            )
        if order.filled >= order.amount:
            order = order.model_copy(update={"status": OrderStatus.CLOSED})
        elif order.type is OrderType.MARKET or order.time_in_force is TimeInForce.IOC:
            order = order.model_copy(update={"status": OrderStatus.CANCELED})
        if order != before:  # a resting order the price has not reached costs no write
            PaperStore.save_order(db, order)
        return order
