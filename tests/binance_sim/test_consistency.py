"""Binance's consistency as the simulator models it, through the real ccxt client: a client id
is refused only while its order is open, order lookups (and optionally the lists) lag
behind a fresh order, and faults fire on a seeded share of requests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any, cast

import ccxt.async_support as ccxt
import pytest

from trader.binance_sim import FaultRule, SimConfig, SimServer
from trader.binance_sim.__main__ import _parser, sim_config
from trader.binance_sim.control import SimControl
from trader.binance_sim.faults import FaultBook

from .conftest import ccxt_client, static_feed

SYM = "BTC/USDT"


@contextlib.asynccontextmanager
async def sim(tmp_path: Path, **config: Any) -> AsyncIterator[tuple[SimServer, ccxt.binance]]:
    async with SimServer(
        SimConfig(
            feed=static_feed(),
            data_dir=tmp_path,
            balances={"USDT": D("10000"), "BTC": D("1")},
            **config,
        )
    ) as srv:
        client = ccxt_client(srv.url)
        try:
            await client.load_markets()
            yield srv, client
        finally:
            await client.close()


async def ioc_buy(client: ccxt.binance, cid: str) -> dict[str, Any]:
    # ccxt is untyped: its orders are plain dicts.
    return cast(
        dict[str, Any],
        await client.create_order(
            SYM, "limit", "buy", 0.01, 65100, {"timeInForce": "IOC", "newClientOrderId": cid}
        ),
    )


async def resting_buy(client: ccxt.binance, cid: str) -> dict[str, Any]:
    return cast(
        dict[str, Any],
        await client.create_order(
            SYM, "limit", "buy", 0.01, 60000, {"timeInForce": "GTC", "newClientOrderId": cid}
        ),
    )


async def by_cid(client: ccxt.binance, cid: str) -> dict[str, Any]:
    return cast(dict[str, Any], await client.fetch_order(None, SYM, {"clientOrderId": cid}))


# --- duplicates: refused only while open ------------------------------------------------------
async def test_a_final_order_s_client_id_is_accepted_again_as_a_new_order(server, client):
    first = await ioc_buy(client, "again-1")
    second = await ioc_buy(client, "again-1")  # the first is FILLED: Binance takes it again
    assert first["status"] == second["status"] == "closed"
    assert int(second["id"]) > int(first["id"])
    assert (await by_cid(client, "again-1"))["id"] == second["id"]  # the newest
    assert (await client.fetch_order(first["id"], SYM))["filled"] == 0.01
    assert [o["id"] for o in await client.fetch_orders(SYM)] == [first["id"], second["id"]]
    trades = await client.fetch_my_trades(SYM)
    assert [t["order"] for t in trades] == [first["id"], second["id"]]
    for order in (first, second):  # each order keeps its own fills
        fetched = await client.fetch_order(order["id"], SYM)
        assert fetched["cost"] == order["cost"] and fetched["clientOrderId"] == "again-1"
    assert [o.id for o in server.engine.orders()] == [first["id"], second["id"]]
    assert server.exchange.lookup("again-1").id == second["id"]
    async with SimControl(server.url) as control:
        stored = {o["order_id"]: o for o in await control.orders()}
    assert stored[int(first["id"])]["arrived_us"] < stored[int(second["id"])]["arrived_us"]


async def test_a_client_id_is_refused_while_its_order_is_open(server, client):
    rest = await resting_buy(client, "open-1")
    assert rest["status"] == "open"
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent."):
        await ioc_buy(client, "open-1")
    await client.cancel_order(rest["id"], SYM)
    again = await ioc_buy(client, "open-1")
    assert again["id"] != rest["id"] and again["status"] == "closed"
    assert (await client.fetch_order(rest["id"], SYM))["status"] == "canceled"
    assert (await by_cid(client, "open-1"))["id"] == again["id"]


async def test_always_refused_restores_strict_uniqueness(tmp_path):
    async with sim(tmp_path, duplicate_client_ids="always") as (srv, client):
        await ioc_buy(client, "strict-1")
        with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent."):
            await ioc_buy(client, "strict-1")
        assert len(srv.engine.orders()) == 1


# --- lookup lag -------------------------------------------------------------------------------
# The checks inside a lag are several signed round trips: the lag leaves them seconds (a loaded
# CI machine can take one of them past a second), and the wait for its end counts from the
# create's return (the order was accepted before it) instead of sleeping a fixed time.
LAG_S = 4.0


async def after_the_lag(created_at: float) -> None:
    await asyncio.sleep(max(0.0, created_at + LAG_S + 0.2 - time.monotonic()))


async def test_a_young_order_is_unknown_to_lookup_and_cancel_but_listed(tmp_path):
    async with sim(tmp_path, lookup_lag_s=LAG_S) as (srv, client):
        rest = await resting_buy(client, "young-1")
        created_at = time.monotonic()
        with pytest.raises(ccxt.OrderNotFound, match="-2013"):
            await by_cid(client, "young-1")
        with pytest.raises(ccxt.OrderNotFound, match="-2013"):
            await client.fetch_order(rest["id"], SYM)
        with pytest.raises(ccxt.OrderNotFound, match="-2011"):
            await client.cancel_order(rest["id"], SYM)
        # The lists have no lag by default.
        assert [o["id"] for o in await client.fetch_open_orders(SYM)] == [rest["id"]]
        assert [o["id"] for o in await client.fetch_orders(SYM)] == [rest["id"]]
        with pytest.raises(ccxt.InvalidOrder, match="Duplicate"):  # the engine knows it
            await resting_buy(client, "young-1")
        await after_the_lag(created_at)
        assert (await by_cid(client, "young-1"))["id"] == rest["id"]
        assert (await client.cancel_order(rest["id"], SYM))["status"] == "canceled"


async def test_a_list_lag_hides_young_orders_and_their_trades_from_the_lists(tmp_path):
    async with sim(tmp_path, list_lag_s=LAG_S) as (srv, client):
        filled = await ioc_buy(client, "listed-1")
        rest = await resting_buy(client, "listed-2")
        created_at = time.monotonic()  # of the younger one
        assert await client.fetch_orders(SYM) == []
        assert await client.fetch_open_orders(SYM) == []
        assert await client.fetch_my_trades(SYM) == []
        assert (await by_cid(client, "listed-1"))["id"] == filled["id"]  # lookups: no lag
        await after_the_lag(created_at)
        assert [o["id"] for o in await client.fetch_orders(SYM)] == [filled["id"], rest["id"]]
        assert [o["id"] for o in await client.fetch_open_orders(SYM)] == [rest["id"]]
        assert [t["order"] for t in await client.fetch_my_trades(SYM)] == [filled["id"]]


async def test_lags_and_duplicates_are_set_at_runtime_over_the_admin_api(server, client):
    async with SimControl(server.url) as control:
        assert await control.consistency() == {
            "lookup_lag_s": 0,
            "list_lag_s": 0,
            "duplicate_client_ids": "while_open",
        }
        now = await control.set_consistency(lookup_lag_s=5, duplicate_client_ids="always")
        assert now == {"lookup_lag_s": 5, "list_lag_s": 0, "duplicate_client_ids": "always"}
        placed = await ioc_buy(client, "rt-1")
        with pytest.raises(ccxt.OrderNotFound):
            await by_cid(client, "rt-1")
        with pytest.raises(ccxt.InvalidOrder, match="Duplicate"):
            await ioc_buy(client, "rt-1")
        await control.set_consistency(lookup_lag_s=0, duplicate_client_ids="while_open")
        assert (await by_cid(client, "rt-1"))["id"] == placed["id"]
        assert (await ioc_buy(client, "rt-1"))["id"] != placed["id"]
        with pytest.raises(RuntimeError, match="400"):
            await control.set_consistency(lookup_lag_s=-1)


# --- probabilistic faults ---------------------------------------------------------------------
def test_a_probabilistic_rule_fires_on_a_seeded_share_of_requests():
    def fired(seed: int) -> list[bool]:
        book = FaultBook(seed=seed)
        book.add(FaultRule(endpoint="*", kind="http_5xx", probability=0.1, count=None))
        out = [book.take("GET /api/v3/ping") is not None for _ in range(2000)]
        assert [r.count for r in book.armed()] == [None]  # unlimited: still armed
        return out

    first = fired(3)
    assert first == fired(3) and first != fired(4)  # reproducible per seed
    assert 140 < sum(first) < 260


def test_a_rule_that_does_not_fire_leaves_the_request_to_the_next_rule():
    book = FaultBook(seed=1)
    book.add(
        FaultRule(
            endpoint="POST /api/v3/order", kind="accept_then_drop", probability=0.5, count=None
        )
    )
    book.add(FaultRule(endpoint="*", kind="rate_limit", seconds=1, count=3))
    kinds = [getattr(book.take("POST /api/v3/order"), "kind", None) for _ in range(40)]
    assert kinds.count("rate_limit") == 3 and kinds.count("accept_then_drop") > 10
    assert kinds.count(None) > 0


async def test_probabilistic_faults_armed_over_http_and_from_the_config(tmp_path):
    rule = FaultRule(endpoint="GET /api/v3/ping", kind="http_5xx", probability=0.5, count=None)
    async with sim(tmp_path, fault_seed=11, faults=(rule,)) as (srv, client):
        outcomes = []
        for _ in range(40):
            try:
                await client.public_get_ping()
                outcomes.append(True)
            except ccxt.ExchangeNotAvailable:
                outcomes.append(False)
        assert 8 < outcomes.count(False) < 32
        assert len(srv.faults.fired) == outcomes.count(False)
        async with SimControl(srv.url) as control:
            await control.clear_faults()
            armed = await control.add_fault(
                {"endpoint": "*", "kind": "rate_limit", "probability": 0.25, "count": None}
            )
            assert armed[0]["probability"] == 0.25 and armed[0]["count"] is None


def test_the_command_line_sets_lags_duplicates_and_seeded_faults():
    args = _parser().parse_args(
        [
            "--lookup-lag",
            "2.5",
            "--list-lag",
            "1",
            "--duplicates",
            "always",
            "--fault-seed",
            "9",
            "--fault",
            '{"endpoint": "POST /api/v3/order", "kind": "accept_then_drop", '
            '"probability": 0.1, "count": null}',
        ]
    )
    config = sim_config(args, static_feed())
    assert (config.lookup_lag_s, config.list_lag_s) == (2.5, 1.0)
    assert config.duplicate_client_ids == "always" and config.fault_seed == 9
    assert config.faults == (
        FaultRule(
            endpoint="POST /api/v3/order", kind="accept_then_drop", probability=0.1, count=None
        ),
    )
    defaults = sim_config(_parser().parse_args([]), static_feed())
    assert (defaults.lookup_lag_s, defaults.list_lag_s, defaults.faults) == (0, 0, ())
    assert defaults.duplicate_client_ids == "while_open"
    with pytest.raises(SystemExit):
        _parser().parse_args(["--fault", "not json"])
