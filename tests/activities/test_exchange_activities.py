"""The exchange activities attempt by attempt (ActivityEnvironment) over the real paper
exchange (SQLite in tmp_path): place_order's lookup before create, the translation of its
failures into ApplicationErrors, and wait_order, cancel_order and reconcile.

The lagging exchange (a lookup that misses a fresh order, a duplicate answer) is the local
Binance server's part: tests/activities/test_place_order.py."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal as D
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.exchange import ExchangeActivities
from tests.activities.envs import attempt_env
from tests.markets import BTC_USDT, ETH_USDT
from trader import contracts as c
from trader.core.market import Order, OrderRequest, OrderSide, OrderStatus, OrderType, TimeInForce
from trader.exchange.feed import StaticFeed
from trader.exchange.paper import PaperExchange, PaperFaults
from trader.hub import MarketHub

CID = "dtpapertest000000000000000000000001"
CID2 = "dtpapertest000000000000000000000002"
WINDOW_S = 0.5


def buy(amount: str = "0.5", cid: str = CID) -> c.PlaceOrderInput:
    return c.PlaceOrderInput(
        symbol="BTC/USDT", side=OrderSide.BUY, amount=D(amount), client_order_id=cid
    )


@dataclass
class Paper:
    feed: StaticFeed
    exchange: PaperExchange
    acts: ExchangeActivities

    async def run(self, fn: Any, arg: Any, **info: Any) -> Any:
        """``fn`` (an activity of ``acts``) run as one attempt; ``info`` as attempt_env's."""
        return await attempt_env(fn.__name__, **info).run(fn, arg)

    async def fails(self, fn: Any, arg: Any, **info: Any) -> ApplicationError:
        with pytest.raises(ApplicationError) as err:
            await self.run(fn, arg, **info)
        return err.value

    async def resting_buy(self, price: str = "90", cid: str = CID) -> Order:
        """A GTC buy below the book: open until the price comes down to it."""
        return await self.exchange.create_order(
            OrderRequest(
                symbol="BTC/USDT",
                side=OrderSide.BUY,
                type=OrderType.LIMIT,
                amount=D("0.5"),
                price=D(price),
                time_in_force=TimeInForce.GTC,
                client_order_id=cid,
            )
        )


@pytest.fixture
async def paper(tmp_path) -> AsyncIterator[Paper]:
    feed = StaticFeed({m.symbol: m for m in (BTC_USDT, ETH_USDT)})
    feed.set_price("BTC/USDT", D("100"))
    feed.set_price("ETH/USDT", D("100"))
    exchange = PaperExchange(
        feed, db_path=tmp_path / "paper.sqlite", quote_balances={"USDT": D("1000")}
    )
    hub = MarketHub(exchange, poll_interval_s=0.05)
    acts = ExchangeActivities(exchange, hub, consistency_window_s=WINDOW_S, order_poll_s=0.05)
    try:
        yield Paper(feed, exchange, acts)
    finally:
        await hub.stop()
        await exchange.close()


# --- place_order: lookup -> create ------------------------------------------------------------
async def test_a_first_attempt_looks_up_then_creates(paper):
    order = await paper.run(paper.acts.place_order, buy())
    [placed] = paper.exchange.orders_with_client_id(CID)
    assert (order.id, order.client_order_id, order.filled) == (placed.id, CID, D("0.5"))
    assert order.is_final  # IOC, priced at the ask: filled at once


@pytest.mark.parametrize("attempt", [1, 2])
async def test_an_order_the_lookup_finds_is_returned_not_created_again(paper, attempt):
    first = await paper.run(paper.acts.place_order, buy())
    # A window of seconds, open when the retry starts: one that waited it out shows, and a
    # loaded machine's slow lookup is not taken for that (the fixture's 0.5 s window had
    # closed before the retry started, and 0.5 s was the bound).
    window_s = 3.0
    acts = ExchangeActivities(
        paper.exchange, paper.acts.hub, consistency_window_s=window_s, order_poll_s=0.05
    )
    started = time.monotonic()
    # A retry (or a re-run activity) of the same decision: the same client order id.
    again = await paper.run(acts.place_order, buy(), attempt=attempt)
    assert time.monotonic() - started < window_s  # found at once, no window waited out
    assert again.id == first.id and len(paper.exchange.orders_with_client_id(CID)) == 1


async def test_a_retry_that_finds_nothing_creates_once_the_window_has_passed(paper):
    started = time.monotonic()
    order = await paper.run(paper.acts.place_order, buy(), attempt=2)
    assert time.monotonic() - started >= WINDOW_S - 0.05
    [placed] = paper.exchange.orders_with_client_id(CID)
    assert order.id == placed.id


async def test_a_retry_that_knows_the_order_id_reads_it_and_never_creates(paper):
    resting = await paper.resting_buy()
    order = await paper.run(
        paper.acts.place_order, buy(), attempt=2, details=[{"order_id": resting.id}]
    )
    assert order.id == resting.id and order.status is OrderStatus.OPEN
    assert len(paper.exchange.all_orders()) == 1


# --- place_order: what its failures become ----------------------------------------------------
@pytest.mark.parametrize(
    ("faults", "amount", "error_type", "non_retryable"),
    [
        (None, "0.00015", "InvalidOrder", True),  # not a multiple of the amount step
        (None, "20", "InsufficientFunds", True),  # 2000 USDT on a 1000 USDT account
        (PaperFaults(reject_creates_with="InvalidOrder"), "0.5", "InvalidOrder", True),
        (PaperFaults(reject_creates_with="InsufficientFunds"), "0.5", "InsufficientFunds", True),
        (PaperFaults(fail_creates=1), "0.5", "RetryableExchangeError", False),
        (PaperFaults(fail_lookups=1), "0.5", "RetryableExchangeError", False),
    ],
)
async def test_a_failed_place_order_is_an_application_error_of_its_type(
    paper, faults, amount, error_type, non_retryable
):
    paper.exchange.faults = faults
    err = await paper.fails(paper.acts.place_order, buy(amount))
    assert (err.type, err.non_retryable) == (error_type, non_retryable), err
    assert paper.exchange.all_orders() == []


async def test_a_client_id_taken_on_another_symbol_is_not_created_again(paper, caplog):
    caplog.set_level(logging.INFO)
    # Paper ids name one order ever: the lookup (by symbol) misses it, the create is
    # refused, and the duplicate cannot be found on this symbol before the deadline.
    await paper.resting_buy()
    err = await paper.fails(
        paper.acts.place_order,
        buy().model_copy(update={"symbol": "ETH/USDT"}),
        timeout_s=1.0,
    )
    assert (err.type, err.non_retryable) == ("OrderStatusUnknown", False)
    assert len(paper.exchange.all_orders()) == 1
    assert "duplicate, but not visible yet" in caplog.text


# --- wait_order, cancel_order, reconcile -------------------------------------------------------
async def test_wait_order_heartbeats_until_the_order_is_final(paper):
    await paper.resting_buy(price="99")
    beats: list[Any] = []
    ref = c.OrderRef(symbol="BTC/USDT", client_order_id=CID, poll_interval_s=0.05)
    env = attempt_env(c.WAIT_ORDER, heartbeats=beats)
    waiting = asyncio.create_task(env.run(paper.acts.wait_order, ref))
    while not beats:
        await asyncio.sleep(0.02)
    assert not waiting.done() and beats[0] == ["0"]  # nothing filled yet
    paper.feed.set_price("BTC/USDT", D("98"))
    order = await asyncio.wait_for(waiting, timeout=5)
    assert order.status is OrderStatus.CLOSED and order.filled == D("0.5")


async def test_cancel_order_returns_the_final_order(paper):
    await paper.resting_buy()
    ref = c.OrderRef(symbol="BTC/USDT", client_order_id=CID)
    order = await paper.run(paper.acts.cancel_order, ref)
    assert order.status is OrderStatus.CANCELED and order.filled == 0
    again = await paper.run(paper.acts.cancel_order, ref)  # a retry: the same answer
    assert (again.id, again.status) == (order.id, OrderStatus.CANCELED)


@pytest.mark.parametrize("activity", ["wait_order", "cancel_order"])
async def test_an_unknown_order_is_a_non_retryable_order_not_found(paper, activity):
    ref = c.OrderRef(symbol="BTC/USDT", client_order_id="dtnosuchorder")
    err = await paper.fails(getattr(paper.acts, activity), ref)
    assert (err.type, err.non_retryable) == ("OrderNotFound", True)


async def test_reconcile_reports_the_order_the_balance_and_a_ticker(paper):
    bought = await paper.run(paper.acts.place_order, buy())
    rec = await paper.run(
        paper.acts.reconcile,
        c.ReconcileInput(symbol="BTC/USDT", client_order_id=CID, base="BTC"),
    )
    assert rec.order is not None and rec.order.id == bought.id
    assert rec.base_balance == rec.base_free == D("0.5")
    assert rec.ticker.symbol == "BTC/USDT" and rec.ticker.bid < rec.ticker.ask
    missing = await paper.run(
        paper.acts.reconcile,
        c.ReconcileInput(symbol="BTC/USDT", client_order_id="dtnosuchorder", base="BTC"),
    )
    assert missing.order is None and missing.base_balance == D("0.5")


async def test_reconcile_reads_a_short_balance_again_before_reporting_it(paper):
    await paper.run(paper.acts.place_order, buy())
    beats: list[Any] = []
    env = attempt_env(c.RECONCILE, heartbeats=beats)
    started = time.monotonic()
    rec = await env.run(
        paper.acts.reconcile,
        c.ReconcileInput(
            symbol="BTC/USDT",
            client_order_id=None,
            base="BTC",
            expect_base=D("1"),
            settle_seconds=0.6,
        ),
    )
    assert time.monotonic() - started >= 0.6
    assert rec.order is None and rec.base_balance == D("0.5")  # reported short, not padded
    assert beats and all(b == ["settling balance"] for b in beats)


# --- the account check: a workflow's order calls on the other kind of account ----------------
async def test_order_calls_of_a_live_workflow_are_refused_on_a_simulated_account(paper):
    await paper.resting_buy()  # an open order the refused cancel must leave alone
    live = {"simulated": False}
    calls = [
        (paper.acts.place_order, buy(cid=CID2).model_copy(update=live)),
        (paper.acts.cancel_order, c.OrderRef(symbol="BTC/USDT", client_order_id=CID, **live)),
        (
            paper.acts.reconcile,
            c.ReconcileInput(symbol="BTC/USDT", client_order_id=CID, base="BTC", **live),
        ),
    ]
    for fn, arg in calls:
        err = await paper.fails(fn, arg)
        assert (err.type, err.non_retryable) == ("WrongAccount", True), fn.__name__
        assert "real account" in str(err) and "simulated" in str(err)
    [order] = await paper.exchange.fetch_open_orders("BTC/USDT")  # nothing placed or canceled
    assert order.client_order_id == CID
    # The workflow of this account's kind (and one older than the field) goes through.
    same = c.OrderRef(symbol="BTC/USDT", client_order_id=CID, simulated=True)
    assert (await paper.run(paper.acts.cancel_order, same)).status is OrderStatus.CANCELED
    mine = buy(cid=CID2).model_copy(update={"simulated": True})
    placed = await paper.run(paper.acts.place_order, mine)
    assert placed.filled == D("0.5")
