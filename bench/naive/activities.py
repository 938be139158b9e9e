"""The naive design's activities: one exchange request per symbol per tick."""

from __future__ import annotations

from decimal import Decimal

from temporalio import activity
from temporalio.exceptions import ApplicationError

from bench.naive import contracts as n
from trader.core.errors import TraderError
from trader.core.market import (
    MarketInfo,
    Order,
    OrderRequest,
    OrderSide,
    OrderType,
    Ticker,
    TimeInForce,
)
from trader.core.rules import EntryWatch, evaluate_exit, update_exit_rules
from trader.core.sizing import round_down
from trader.exchange.port import Exchange


class NaiveActivities:
    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self._markets: dict[str, MarketInfo] = {}

    async def _ticker(self, symbol: str) -> Ticker:
        return (await self.exchange.fetch_tickers([symbol]))[symbol]

    @activity.defn(name=n.ENTRY_TICK)
    async def entry_tick(self, inp: n.EntryTickInput) -> n.EntryTickResult:
        ticker = await self._ticker(inp.symbol)
        watch = EntryWatch(inp.state, inp.params)
        signal = watch.see(ticker.ts_ms, ticker.last)
        return n.EntryTickResult(fired=signal.triggered, ticker=ticker, state=watch.state())

    @activity.defn(name=n.EXIT_TICK)
    async def exit_tick(self, inp: n.ExitTickInput) -> n.ExitTickResult:
        ticker = await self._ticker(inp.symbol)
        h = inp.holding
        rules = update_exit_rules(h.rules, ticker.last, h.entry_price, inp.params)
        decision = evaluate_exit(
            price=ticker.last,
            entry_price=h.entry_price,
            rules=rules,
            entry_ts=h.entry_ts,
            now=ticker.ts_ms / 1000,
            params=inp.params,
        )
        return n.ExitTickResult(fired=decision.exit, ticker=ticker, rules=rules)

    @activity.defn(name=n.PLACE)
    async def place(self, inp: n.PlaceInput) -> Order:
        if not self._markets:
            self._markets = await self.exchange.load_markets()
        market = self._markets[inp.symbol]
        ticker = await self._ticker(inp.symbol)
        if inp.side is OrderSide.BUY:
            amount = round_down(inp.budget / ticker.ask, market.amount_step)
        else:
            amount = round_down(inp.amount or Decimal(0), market.amount_step)
        request = OrderRequest(
            symbol=inp.symbol,
            side=inp.side,
            type=OrderType.MARKET,
            amount=amount,
            time_in_force=TimeInForce.IOC,
            client_order_id=inp.client_order_id,
        )
        try:
            return await self.exchange.create_order(request)
        except TraderError as exc:  # refused (funds, minimums): the workflow stays as it is
            raise ApplicationError(str(exc), type="NaiveOrderRefused", non_retryable=True) from exc
