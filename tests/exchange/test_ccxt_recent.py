"""What the ccxt adapter tells the order activity about an ambiguous create, through the real
ccxt client against the local Binance server: a create that answered but whose fills could
not be read names the order it made; an order is read by its exchange id; and the symbol's
recent orders (allOrders + myTrades) show every order since T, a trade whose order is not
listed yet included."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal as D

import pytest

from activities.errors import to_application_error
from tests.binance_sim.conftest import ccxt_client
from tests.exchange.sim_fixtures import KEY, SECRET, no_fills_in_create_response, sim_and_adapter
from trader.binance_sim.faults import FaultRule
from trader.core import errors as e
from trader.core.market import OrderRequest, OrderSide, OrderType, TimeInForce
from trader.exchange.ccxt_setup import ClientIdRule

SYM = "BTC/USDT"
TRADES = "GET /api/v3/myTrades"


def _buy(coid: str, *, price: str = "101", tif: TimeInForce = TimeInForce.IOC) -> OrderRequest:
    return OrderRequest(
        symbol=SYM,
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        amount=D("1"),
        price=D(price),
        time_in_force=tif,
        client_order_id=coid,
    )


async def test_a_create_that_answered_but_whose_fills_are_unreadable_names_its_order(tmp_path):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        no_fills_in_create_response(ex)
        srv.faults.add(FaultRule(endpoint=TRADES, kind="http_5xx", status=502))
        with pytest.raises(e.OrderAcceptedUnread) as err:
            await ex.create_order(_buy("dtunread1"))
        [placed] = srv.exchange.all_orders()
        assert err.value.order_id == placed.id
        assert isinstance(err.value, e.OrderStatusUnknown)  # retryable, never a rejection
        app = to_application_error(err.value)
        assert app.type == "OrderAcceptedUnread" and not app.non_retryable
        assert list(app.details) == [placed.id]  # the failure carries it too
        read = await ex.fetch_order(SYM, "dtunread1", order_id=placed.id)
        assert (read.id, read.filled) == (placed.id, D("1")) and read.fee_base == placed.fee_base


async def test_a_create_that_failed_in_transit_names_no_order(tmp_path):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        await ex.load_markets()
        srv.faults.add(FaultRule(endpoint="POST /api/v3/order", kind="accept_then_drop"))
        with pytest.raises(e.OrderStatusUnknown) as err:
            await ex.create_order(_buy("dtlost1"))
        assert not isinstance(err.value, e.OrderAcceptedUnread)


async def test_an_order_is_read_by_its_exchange_id_even_when_its_client_id_was_reused(tmp_path):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        first = await ex.create_order(_buy("dtsame1"))
        second = await ex.create_order(_buy("dtsame1"))  # final: Binance takes the id again
        assert first.id != second.id
        assert (await ex.fetch_order(SYM, "dtsame1")).id == second.id
        by_id = await ex.fetch_order(SYM, "dtsame1", order_id=first.id)
        assert by_id == first


async def test_recent_orders_since_t_with_fees_from_the_listed_trades(tmp_path):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        old = await ex.create_order(_buy("dtold1"))
        # Gaps well above ccxt's clock-offset adjustment, which a loaded machine skews by
        # tens of ms (10 ms gaps let the old order in under load).
        await asyncio.sleep(0.3)
        stored = srv.exchange.lookup("dtold1")
        assert stored is not None
        since = int(stored.ts_ms) + 150
        await asyncio.sleep(0.3)
        filled = await ex.create_order(_buy("dtnew1"))
        resting = await ex.create_order(_buy("dtrest1", price="90", tif=TimeInForce.GTC))
        srv.stats.clear()
        recent = await ex.fetch_recent_orders(SYM, since_ms=since)
        assert recent == [filled, resting] and old not in recent
        assert recent[0].fee_base > 0 and recent[0].fee_base == filled.fee_base
        # One list of orders and one of trades: no request per order for its fees.
        assert srv.stats == {"GET /api/v3/allOrders": 1, TRADES: 1}


async def test_recent_orders_carry_our_client_id_where_the_exchange_got_a_digest(tmp_path):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        ex._ids = ClientIdRule(
            "newClientOrderId", "origClientOrderId", re.compile(r"[A-Za-z0-9]{1,20}"), 20
        )
        ours = "dt" + "b2" * 16 + "00"  # 36 characters: sent as a digest
        placed = await ex.create_order(_buy(ours))
        [recent] = await ex.fetch_recent_orders(SYM, since_ms=0)
        assert srv.exchange.lookup(ours) is None and recent.client_order_id == ours
        assert recent == placed


@pytest.mark.parametrize("lookup_lag_s", [0, 30])
async def test_a_trade_whose_order_is_not_listed_is_read_by_id_or_left_unattributed(
    tmp_path, lookup_lag_s
):
    async with sim_and_adapter(tmp_path) as (srv, ex):
        await ex.load_markets()
        srv.engine.consistency.lookup_lag_s = lookup_lag_s
        # allOrders is answered, then held while another client places an order: the trades
        # listed next include one of an order the order list did not have.
        srv.faults.add(
            FaultRule(endpoint="GET /api/v3/allOrders", kind="accept_then_hang", seconds=1)
        )
        other = ccxt_client(srv.url, key=KEY, secret=SECRET)
        try:
            await other.load_markets()
            recent = asyncio.create_task(ex.fetch_recent_orders(SYM, since_ms=0))
            while not srv.stats["GET /api/v3/allOrders"]:  # the server has the request
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # and has answered it (the answer is held)
            placed = await other.create_order(
                SYM,
                "limit",
                "buy",
                1,
                101,
                {"timeInForce": "IOC", "newClientOrderId": "dtbetween1"},
            )
            [seen] = await recent
        finally:
            await other.close()
        assert seen.id == placed["id"] and seen.filled == D("1")
        if lookup_lag_s:  # not readable by id either: whose it is cannot be told
            assert seen.client_order_id == ""
        else:
            assert seen.client_order_id == "dtbetween1" and seen.fee_base > 0
