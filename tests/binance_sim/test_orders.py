"""Orders through the real ccxt client: IOC/GTC/market, client ids, fills, fees, errors."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import ccxt.async_support as ccxt
import pytest

from trader.binance_sim import SimConfig, SimServer

from .conftest import ccxt_client, signed, static_feed

CID = {"newClientOrderId": "wf-1.buy:1"}


async def test_ioc_buy_fills_with_commission_in_the_base_asset(server, client):
    order = await client.create_order(
        "BTC/USDT", "limit", "buy", 0.01, 65100, {**CID, "timeInForce": "IOC"}
    )
    assert order["clientOrderId"] == "wf-1.buy:1" and order["status"] == "closed"
    assert order["filled"] == 0.01 and order["average"] == 65032.5
    assert order["fee"] == {"currency": "BTC", "cost": 1e-05}
    trades = await client.fetch_my_trades("BTC/USDT", params={"orderId": order["id"]})
    assert [
        (t["order"], t["side"], t["amount"], t["fee"]["currency"], t["fee"]["cost"]) for t in trades
    ] == [(order["id"], "buy", 0.01, "BTC", 1e-05)]
    balance = await client.fetch_balance()
    assert balance["BTC"]["total"] == 1.00999  # 1 + 0.01 - 0.00001 withheld
    assert balance["USDT"]["total"] == 10000 - 650.325  # no quote fee on a buy
    sell = await client.create_order(
        "BTC/USDT", "market", "sell", 0.00999, params={"newClientOrderId": "wf-1.sell:2"}
    )
    assert sell["status"] == "closed" and sell["fee"]["currency"] == "USDT"
    assert (await client.fetch_my_trades("BTC/USDT"))[-1]["fee"]["currency"] == "USDT"
    assert server.exchange.lookup("wf-1.buy:1").fee_base == D("0.00001")


async def test_duplicate_client_order_id_is_ccxt_invalid_order(server, client):
    # While the order is open (tests/binance_sim/test_consistency.py: a final one's id is
    # taken again, as on Binance).
    await client.create_order(
        "BTC/USDT", "limit", "buy", 0.01, 60000, {**CID, "timeInForce": "GTC"}
    )
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent."):
        await client.create_order(
            "BTC/USDT", "limit", "buy", 0.01, 65100, {**CID, "timeInForce": "IOC"}
        )
    assert len(server.engine.orders()) == 1


async def test_duplicate_wins_over_insufficient_funds_for_a_retried_order(server, client):
    # The resting first attempt holds 9000 of the 10000 USDT; its retry must still say
    # "duplicate".
    await client.create_order(
        "BTC/USDT", "limit", "buy", 0.15, 60000, {**CID, "timeInForce": "GTC"}
    )
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent."):
        await client.create_order(
            "BTC/USDT", "limit", "buy", 0.15, 60000, {**CID, "timeInForce": "GTC"}
        )


async def test_fetch_and_cancel_by_client_order_id(server, client):
    placed = await client.create_order(
        "BTC/USDT", "limit", "buy", 0.01, 60000, {**CID, "timeInForce": "GTC"}
    )
    assert placed["status"] == "open" and placed["filled"] == 0
    by_cid = await client.fetch_order(None, "BTC/USDT", {"clientOrderId": "wf-1.buy:1"})
    by_id = await client.fetch_order(placed["id"], "BTC/USDT")
    assert by_cid["id"] == by_id["id"] == placed["id"] and by_cid["status"] == "open"
    assert [o["clientOrderId"] for o in await client.fetch_open_orders("BTC/USDT")] == [
        "wf-1.buy:1"
    ]
    cancelled = await client.cancel_order(None, "BTC/USDT", {"clientOrderId": "wf-1.buy:1"})
    assert cancelled["status"] == "canceled" and cancelled["id"] == placed["id"]
    assert (await client.fetch_order(placed["id"], "BTC/USDT"))["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):  # Binance: no longer cancellable
        await client.cancel_order(placed["id"], "BTC/USDT")
    assert await client.fetch_open_orders("BTC/USDT") == []


async def test_unknown_orders_are_ccxt_order_not_found(server, client):
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        await client.fetch_order(None, "BTC/USDT", {"clientOrderId": "never-sent"})
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        await client.cancel_order(None, "BTC/USDT", {"clientOrderId": "never-sent"})
    await client.create_order(
        "BTC/USDT", "limit", "buy", 0.01, 65100, {**CID, "timeInForce": "IOC"}
    )
    with pytest.raises(ccxt.OrderNotFound):  # right id, wrong market
        await client.fetch_order(None, "ADA/BTC", {"clientOrderId": "wf-1.buy:1"})


async def test_insufficient_funds_counts_what_resting_orders_hold(server, client):
    with pytest.raises(ccxt.InsufficientFunds):
        await client.create_order("BTC/USDT", "limit", "buy", 1, 65100, {"timeInForce": "IOC"})
    await client.create_order("BTC/USDT", "limit", "buy", 0.1, 60000, {"timeInForce": "GTC"})
    balance = await client.fetch_balance()
    assert balance["USDT"]["used"] == 6000 and balance["USDT"]["free"] == 4000
    with pytest.raises(ccxt.InsufficientFunds):  # 6000 more would need the held 6000
        await client.create_order("BTC/USDT", "limit", "buy", 0.1, 60000, {"timeInForce": "GTC"})
    with pytest.raises(ccxt.InsufficientFunds):
        await client.create_order("BTC/USDT", "market", "sell", 2)


async def test_a_market_buy_is_priced_through_the_levels_it_walks(server, client):
    # 1 BTC at 65000 takes the first level (~0.77 BTC) and part of the second: enough
    # USDT for 1 BTC at the ask is not enough, and the account must never go negative.
    server.exchange.set_balance("USDT", D("65032.50"))
    with pytest.raises(ccxt.InsufficientFunds):
        await client.create_order("BTC/USDT", "market", "buy", 1)
    assert server.engine.orders() == []
    assert (await server.exchange.fetch_balance())["USDT"] == D("65032.50")


async def test_filter_failures_use_binance_codes(server, client):
    # ccxt maps -1013 by the filter named in the body: LOT_SIZE / PRICE_FILTER ->
    # InvalidOrder; NOTIONAL -> BadRequest (so an adapter must treat BadRequest from
    # create_order as a rejection).
    with pytest.raises(ccxt.BadRequest, match="Filter failure: NOTIONAL"):
        await client.create_order(
            "BTC/USDT", "limit", "buy", 0.00005, 65000, {"timeInForce": "IOC"}
        )
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "IOC"}
    assert await signed(
        server.url, "POST", "/api/v3/order", {**base, "quantity": "0.000001", "price": "65000"}
    ) == (400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"})
    assert await signed(
        server.url, "POST", "/api/v3/order", {**base, "quantity": "0.01", "price": "65000.001"}
    ) == (400, {"code": -1013, "msg": "Filter failure: PRICE_FILTER"})
    assert await signed(
        server.url,
        "POST",
        "/api/v3/order",
        {**base, "symbol": "NOPE", "quantity": "1", "price": "1"},
    ) == (400, {"code": -1121, "msg": "Invalid symbol."})
    assert server.engine.orders() == []


async def test_market_orders_by_quantity_and_by_quote_order_qty(server, client):
    order = await client.create_order("BTC/USDT", "market", "buy", 0.001)
    assert order["status"] == "closed" and order["price"] == 65032.5  # ccxt: the average
    assert order["info"]["price"] == "0.00000000" and order["info"]["type"] == "MARKET"
    spent = await client.create_order(
        "BTC/USDT", "market", "buy", None, params={"quoteOrderQty": 650}
    )
    assert spent["filled"] == 0.00999  # 650 / 65032.5 rounded down to the lot step
    assert spent["cost"] <= 650


async def test_partial_fills_walk_the_book_then_expire_or_rest(tmp_path):
    # No background re-matching here: each look at a resting order that crosses the book
    # takes one more level's worth (the simulated book replenishes).
    config = SimConfig(
        feed=static_feed(),
        data_dir=tmp_path,
        level_liquidity_quote=D(6500),
        balances={"USDT": D("100000")},
        rematch_interval_s=3600,
    )
    async with SimServer(config) as srv:
        client = ccxt_client(srv.url)
        try:
            ioc = await client.create_order(
                "BTC/USDT", "limit", "buy", 0.5, 65050, {"timeInForce": "IOC"}
            )
            # ~0.1 BTC per level: two levels at or under 65050, then the rest expires.
            assert ioc["status"] == "expired" and 0 < ioc["filled"] < 0.5
            assert len(ioc["trades"]) == 2 and ioc["trades"][0]["price"] < ioc["trades"][1]["price"]
            gtc = await client.create_order(
                "BTC/USDT", "limit", "buy", 0.5, 65040, {"timeInForce": "GTC"}
            )
            assert gtc["status"] == "open" and 0 < gtc["filled"] < 0.5
            assert gtc["info"]["status"] == "PARTIALLY_FILLED"
            trades = await client.fetch_my_trades("BTC/USDT", params={"orderId": gtc["id"]})
            now = srv.exchange.lookup(gtc["clientOrderId"])  # as stored, not re-matched
            assert now is not None
            assert len(trades) >= 2 and sum(D(t["info"]["qty"]) for t in trades) == now.filled
        finally:
            await client.close()


async def test_gtc_fills_after_the_price_moves_without_anyone_asking(server, client):
    placed = await client.create_order(
        "BTC/USDT", "limit", "buy", 0.01, 64000, {**CID, "timeInForce": "GTC"}
    )
    assert placed["status"] == "open"
    server.set_price("BTC/USDT", D("63900"))  # ask 63931.95 <= 64000
    for _ in range(50):  # the server's re-match loop (every 0.2 s) fills it
        if server.exchange.lookup("wf-1.buy:1").status.value == "closed":
            break
        await asyncio.sleep(0.05)
    assert server.exchange.lookup("wf-1.buy:1").status.value == "closed"
    done = await client.fetch_order(placed["id"], "BTC/USDT")
    assert done["status"] == "closed" and done["average"] == 63931.95
    balance = await client.fetch_balance()
    assert balance["USDT"]["used"] == 0 and balance["BTC"]["total"] == 1.00999


async def test_all_orders_lists_every_order_of_the_symbol(server, client):
    for i in range(3):
        await client.create_order(
            "BTC/USDT",
            "limit",
            "buy",
            0.01,
            65100,
            {"timeInForce": "IOC", "newClientOrderId": f"c{i}"},
        )
    orders = await client.fetch_orders("BTC/USDT")
    assert [o["clientOrderId"] for o in orders] == ["c0", "c1", "c2"]
    assert {o["status"] for o in orders} == {"closed"}


async def test_cancel_all_open_orders_of_a_symbol(server, client):
    for i in range(2):
        await client.create_order(
            "BTC/USDT",
            "limit",
            "buy",
            0.01,
            60000 + i,
            {"timeInForce": "GTC", "newClientOrderId": f"g{i}"},
        )
    cancelled = await client.cancel_all_orders("BTC/USDT")
    # As on Binance, clientOrderId is the cancel request's own id; the order's is "orig".
    assert sorted(o["info"]["origClientOrderId"] for o in cancelled) == ["g0", "g1"]
    assert {o["status"] for o in cancelled} == {"canceled"}
    assert await client.fetch_open_orders("BTC/USDT") == []
    assert (await client.fetch_balance())["USDT"]["used"] == 0
    with pytest.raises(ccxt.OrderNotFound):  # nothing left to cancel
        await client.cancel_all_orders("BTC/USDT")


async def test_an_order_is_found_by_its_id_without_reading_every_order(server, client):
    for i in range(3):
        await client.create_order(
            "BTC/USDT",
            "limit",
            "buy",
            0.01,
            60000 + i,
            {"timeInForce": "GTC", "newClientOrderId": f"o{i}"},
        )
    [order] = [o for o in server.engine.orders() if o.client_order_id == "o1"]

    def every_order() -> None:
        raise AssertionError("a lookup by orderId read every order")

    server.exchange.all_orders = every_order
    found = await client.fetch_order(order.id, "BTC/USDT")
    assert (found["id"], found["clientOrderId"], found["price"]) == (order.id, "o1", 60001)
    assert (await client.cancel_order(order.id, "BTC/USDT"))["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        await client.fetch_order("999", "BTC/USDT")


async def test_cummulative_quote_qty_is_the_exact_sum_of_the_fills(server, client):
    # 1.122 BTC walks two levels; average x filled is 72971.05961160000000000000001.
    server.exchange.set_balance("USDT", D(100_000))
    placed = (await client.create_order("BTC/USDT", "market", "buy", 1.122))["info"]
    exact = sum((D(f["price"]) * D(f["qty"]) for f in placed["fills"]), D(0))
    assert len(placed["fills"]) == 2 and exact == D("72971.0596116")
    fetched = (await client.fetch_order(placed["orderId"], "BTC/USDT"))["info"]
    assert placed["cummulativeQuoteQty"] == fetched["cummulativeQuoteQty"] == "72971.05961160"


async def test_quote_order_qty_is_never_overspent_when_the_buy_walks_the_book(server, client):
    server.exchange.set_balance("USDT", D(200_000))  # 100k USDT is more than the first level
    order = await client.create_order(
        "BTC/USDT", "market", "buy", None, params={"quoteOrderQty": 100_000}
    )
    fills = order["info"]["fills"]
    spent = sum((D(f["price"]) * D(f["qty"]) for f in fills), D(0))
    assert len(fills) >= 2 and D(99_990) < spent <= D(100_000)


async def test_the_filter_maximums_exchange_info_advertises_are_enforced(server):
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "IOC"}
    for quantity, price, failure in (
        ("9000001", "1", "LOT_SIZE"),
        ("1e30", "1", "LOT_SIZE"),  # not a 500
        ("0.01", "1000000.01", "PRICE_FILTER"),
        ("9.00001", "1000000", "NOTIONAL"),
    ):  # > maxNotional
        assert await signed(
            server.url, "POST", "/api/v3/order", {**base, "quantity": quantity, "price": price}
        ) == (400, {"code": -1013, "msg": f"Filter failure: {failure}"}), (quantity, price)
    assert server.engine.orders() == []
