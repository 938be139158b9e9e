"""An order's limit price comes from the hub's held price while that is fresh enough for an
order (``ORDER_PRICE_AGE_SECONDS``), with no ticker request of its own; a staler held price
never prices an order: the order asks the exchange, as before, and uses its answer.
Through the real path: ``place_order`` (ActivityEnvironment) over the ccxt adapter, the hub
on the local Binance server's stream, the server's request log counting ticker requests."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from activities.exchange import ExchangeActivities
from tests.activities.envs import attempt_env
from tests.exchange.sim_fixtures import sim_and_adapter
from tests.exchange.test_hub_stream import eventually, on_stream, rest_requests, until
from trader import contracts as c
from trader.core.market import OrderSide, OrderType, TimeInForce
from trader.core.sizing import order_limit_price
from trader.hub import MarketHub, at_mid

SYMBOL = "BTC/USDT"
OFFSET = D(10)


def order_input(side: OrderSide, n: int) -> c.PlaceOrderInput:
    return c.PlaceOrderInput(
        symbol=SYMBOL,
        side=side,
        amount=D("0.5"),
        client_order_id=f"dtorderprice{side.value}{n:023d}",
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.IOC,
        limit_offset_bps=OFFSET,
    )


# Frames every 0.1 s whether the book moves or not: a streamed price is always well inside
# the order bound while the stream flows (Binance's books never stand still either).
FLOWING = {"stream_idle_push_s": 0.1}


@pytest.mark.parametrize("side", [OrderSide.BUY, OrderSide.SELL])
async def test_a_streamed_price_prices_the_order_with_no_ticker_request(tmp_path, side):
    async with sim_and_adapter(tmp_path, streams=True, sim=FLOWING) as (srv, ex):
        hub = MarketHub(ex, poll_interval_s=0.05)  # the default order bound
        acts = ExchangeActivities(ex, hub)
        try:
            async with hub.subscription(SYMBOL) as btc:
                await on_stream(hub, btc)
                srv.set_price(SYMBOL, D("97"))
                await until(btc, lambda t: t.last == D("97"))
            # The watch has returned (as before an order): the stream still carries it.
            held = hub.latest(SYMBOL)
            asked, stats = rest_requests(srv), dict(srv.stats)
            order = await attempt_env(c.PLACE_ORDER).run(acts.place_order, order_input(side, 1))
            assert rest_requests(srv) == asked, {
                k: srv.stats[k] - stats.get(k, 0) for k in srv.stats
            }
            # The lookup before the create is still asked, then the create.
            assert srv.stats["GET /api/v3/order"] == stats.get("GET /api/v3/order", 0) + 1
            assert srv.stats["POST /api/v3/order"] == stats.get("POST /api/v3/order", 0) + 1
            market = (await ex.load_markets())[SYMBOL]
            assert held is not None and held.last == D("97")
            assert order.price == order_limit_price(side, held, OFFSET, market.price_tick)
        finally:
            await hub.stop()


async def test_a_stale_held_price_never_prices_an_order(tmp_path):
    # The stream stalls: the hub still vouches for its price (a watch may use it up to the
    # stall limit), but it is older than an order may take; the book moved meanwhile.
    async with sim_and_adapter(tmp_path, streams=True, sim=FLOWING) as (srv, ex):
        hub = MarketHub(ex, poll_interval_s=0.05, max_price_age_s=30.0, stream_stall_s=20.0)
        acts = ExchangeActivities(ex, hub)
        try:
            async with hub.subscription(SYMBOL) as btc:
                await on_stream(hub, btc)
                srv.streams.stall(15.0)
                srv.set_price(SYMBOL, D("103"))  # not streamed while stalled
                await eventually(lambda: (hub.age_s(SYMBOL) or 0) > 0.6)
                assert hub.source(SYMBOL) == "stream"
                stale = hub.latest(SYMBOL)
                assert stale is not None and stale.last == D("100")
                asked = rest_requests(srv)
                order = await attempt_env(c.PLACE_ORDER).run(
                    acts.place_order, order_input(OrderSide.BUY, 2)
                )
                assert rest_requests(srv) == asked + 1  # the order's own ticker request
            fresh = at_mid((await ex.fetch_tickers([SYMBOL]))[SYMBOL])
            assert fresh.last == D("103")
            market = (await ex.load_markets())[SYMBOL]
            assert order.price == order_limit_price(OrderSide.BUY, fresh, OFFSET, market.price_tick)
        finally:
            await hub.stop()
