"""The legacy engine's orders through the real ccxt adapter and the local Binance server: a
create whose answer was lost is looked for in every place the exchange shows orders (the
order query lags on Binance), and created again only once all of them answer without it."""

from __future__ import annotations

import time
from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.exchange.sim_fixtures import sim_and_adapter
from trader.binance_sim import SimServer
from trader.binance_sim.faults import FaultRule
from trader.core.errors import OrderStatusUnknown
from trader.core.market import Order, OrderRequest, OrderSide, OrderType, TimeInForce
from trader.core.params import TraderParams
from trader.exchange.ccxt_adapter import CcxtExchange
from trader.hub import MarketHub
from trader.legacy.orders import find_confirmed, place_once

CREATE = "POST /api/v3/order"
WINDOW_S = 1.0
PARAMS = TraderParams(order_consistency_window_seconds=WINDOW_S)
BUY = OrderRequest(
    symbol="BTC/USDT",
    side=OrderSide.BUY,
    amount=D("1"),
    client_order_id="legacy-buy-1",
    type=OrderType.LIMIT,
    time_in_force=TimeInForce.IOC,
)


async def _place(ex: CcxtExchange, placed_ts: float, *, resumed: bool) -> Order:
    hub = MarketHub(ex)
    try:
        return await place_once(
            ex, hub, PARAMS, request=BUY, limit_offset_bps=D("10"), placed_ts=placed_ts,
            resumed=resumed,
        )  # fmt: skip
    finally:
        await hub.stop()


async def _lost_create(srv: SimServer, ex: CcxtExchange) -> float:
    """The buy sent once: accepted by the server, its answer lost. Returns when it was sent."""
    srv.faults.add(FaultRule(endpoint=CREATE, kind="accept_then_drop"))
    placed_ts = time.time()
    with pytest.raises(OrderStatusUnknown):
        await _place(ex, placed_ts, resumed=False)
    return placed_ts


async def test_a_lost_create_is_found_in_the_order_list_past_a_lagging_lookup(tmp_path: Path):
    async with sim_and_adapter(tmp_path, sim={"lookup_lag_s": 30}) as (srv, ex):
        placed_ts = await _lost_create(srv, ex)
        order = await _place(ex, placed_ts, resumed=True)  # the retry
        [accepted] = srv.exchange.all_orders()
        assert order.id == accepted.id and order.client_order_id == BUY.client_order_id
        assert order.filled == accepted.filled > 0 and order.fee_base > 0
        assert srv.stats[CREATE] == 1  # never sent again


async def test_a_lagging_lookup_is_no_proof_of_absence_in_error_either(tmp_path: Path):
    """ERROR (and a reconcile) ask ``find_confirmed``: it finds the order in the lists."""
    async with sim_and_adapter(tmp_path, sim={"lookup_lag_s": 30}) as (srv, ex):
        placed_ts = await _lost_create(srv, ex)
        found = await find_confirmed(ex, PARAMS, BUY.symbol, BUY.client_order_id, placed_ts)
        [accepted] = srv.exchange.all_orders()
        assert found is not None and found.id == accepted.id


async def test_an_order_nowhere_after_the_window_is_created(tmp_path: Path):
    async with sim_and_adapter(tmp_path, sim={"lookup_lag_s": 30}) as (srv, ex):
        srv.faults.add(FaultRule(endpoint=CREATE, kind="http_5xx", status=503))  # not taken
        placed_ts = time.time()
        with pytest.raises(OrderStatusUnknown):
            await _place(ex, placed_ts, resumed=False)
        order = await _place(ex, placed_ts, resumed=True)
        [accepted] = srv.exchange.all_orders()
        assert order.id == accepted.id and srv.stats[CREATE] == 2
