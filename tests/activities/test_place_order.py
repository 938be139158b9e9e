"""The place_order activity, attempt by attempt (ActivityEnvironment), against the local
Binance server through the real ccxt adapter, with Binance's consistency: a final order's
client id is accepted again, and the order query lags behind a fresh order.

An attempt that got the create's answer never lets a retry create again; a retry that does
not know creates only once absence is confirmed over the consistency window."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.exchange import ExchangeActivities
from tests.activities.envs import attempt_env
from tests.binance_sim.conftest import ccxt_client
from tests.exchange.sim_fixtures import KEY, SECRET, no_fills_in_create_response, sim_and_adapter
from trader import contracts as c
from trader.binance_sim import FaultRule, SimServer
from trader.core.market import Order, OrderSide, OrderType, TimeInForce
from trader.exchange.ccxt_adapter import CcxtExchange
from trader.hub import MarketHub

CREATE, TRADES = "POST /api/v3/order", "GET /api/v3/myTrades"
CID = "dtwindowtest00000000000000000000001"
WINDOW_S = 3.0
ORDER_INPUT = c.PlaceOrderInput(
    symbol="BTC/USDT",
    side=OrderSide.BUY,
    amount=D("1"),
    client_order_id=CID,
    type=OrderType.LIMIT,
    time_in_force=TimeInForce.IOC,
    limit_offset_bps=D(10),
)


@dataclass
class Attempts:
    """One activity execution's attempts, as Temporal would run them: each attempt sees the
    heartbeat details the previous one recorded last (unless ``lose`` says they were lost)."""

    srv: SimServer
    ex: CcxtExchange
    acts: ExchangeActivities
    details: list[Any] = field(default_factory=list)
    attempt: int = 0
    first_scheduled: datetime = field(default_factory=lambda: datetime.now(UTC))

    async def run(
        self, *, queued_s: float = 0.0, timeout_s: float = 5.0, lose_details: bool = False
    ) -> Order:
        self.attempt += 1
        beats: list[Any] = []
        env = attempt_env(
            c.PLACE_ORDER,
            attempt=self.attempt,
            details=[] if lose_details else self.details,
            first_scheduled=self.first_scheduled,
            queued_s=queued_s,
            timeout_s=timeout_s,
            heartbeats=beats,
        )
        try:
            return await env.run(self.acts.place_order, ORDER_INPUT)
        finally:
            if beats:  # what the next attempt sees: the latest heartbeat's details
                self.details = beats[-1]

    async def fails(self, error_type: str, **kw: Any) -> ApplicationError:
        with pytest.raises(ApplicationError) as err:
            await self.run(**kw)
        assert err.value.type == error_type, err.value
        return err.value


@contextlib.asynccontextmanager
async def attempts(
    tmp_path: Path,
    *,
    lookup_lag_s: float = 2.5,
    list_lag_s: float = 2.5,
    window_s: float = WINDOW_S,
) -> AsyncIterator[Attempts]:
    async with sim_and_adapter(tmp_path, balances={"USDT": D("10000")}) as (srv, ex):
        await ex.load_markets()
        srv.engine.consistency.lookup_lag_s = lookup_lag_s
        srv.engine.consistency.list_lag_s = list_lag_s
        hub = MarketHub(ex)
        try:
            yield Attempts(srv, ex, ExchangeActivities(ex, hub, consistency_window_s=window_s))
        finally:
            await hub.stop()


async def _rest_an_order_with_our_id(srv: SimServer) -> None:
    """An open buy with ``CID`` placed by another client (as an earlier attempt would)."""
    other = ccxt_client(srv.url, key=KEY, secret=SECRET)
    try:
        await other.load_markets()
        await other.create_order(
            "BTC/USDT", "limit", "buy", 1, 90, {"timeInForce": "GTC", "newClientOrderId": CID}
        )
    finally:
        await other.close()


def _messages(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("fault", "details_reach_the_retry"),
    [
        ("fills_unread", True),  # the create answered; reading its fills failed
        ("fills_unread", False),  # ... and the heartbeat that names the order was lost
        ("response_lost", False),  # the create's answer never came
    ],
)
async def test_a_create_that_reached_the_exchange_is_never_made_twice(
    tmp_path, caplog, fault, details_reach_the_retry
):
    caplog.set_level(logging.INFO)
    async with attempts(tmp_path) as a:
        if fault == "fills_unread":
            no_fills_in_create_response(a.ex)
            a.srv.faults.add(FaultRule(endpoint=TRADES, kind="http_5xx", status=502))
            failure = await a.fails("OrderAcceptedUnread")
            [placed] = a.srv.exchange.all_orders()
            assert list(failure.details) == [placed.id]
            assert a.details == [{"order_id": placed.id}]  # recorded for the retry
        else:
            a.srv.faults.add(FaultRule(endpoint=CREATE, kind="accept_then_drop"))
            await a.fails("OrderStatusUnknown")
            [placed] = a.srv.exchange.all_orders()
        # The retry comes after Temporal's first backoff (1 s), well inside the 2.5 s lag.
        await asyncio.sleep(1.0)
        started = time.monotonic()
        order = await a.run(queued_s=1.0, lose_details=not details_reach_the_retry)
        # Found as soon as it is visible (~1.5 s), not at the attempt's deadline (4.5 s); a
        # second of slack for a loaded machine's round trips.
        assert time.monotonic() - started < 3.5
        assert a.srv.stats[CREATE] == 1 and len(a.srv.exchange.all_orders()) == 1
        assert (order.id, order.filled, order.client_order_id) == (placed.id, D("1"), CID)
        assert order.fee_base == sum(f.fee for f in a.srv.exchange.fills("BTC/USDT")) > 0
    text = _messages(caplog)
    if details_reach_the_retry:
        assert f"created earlier as {placed.id}" in text
    else:
        assert "found by" in text


async def test_a_retry_creates_only_once_absence_is_confirmed_over_the_window(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with attempts(tmp_path) as a:
        a.srv.faults.add(FaultRule(endpoint=CREATE, kind="http_5xx", status=503))  # not done
        await a.fails("OrderStatusUnknown")
        assert a.srv.exchange.all_orders() == []
        started = time.monotonic()
        order = await a.run(queued_s=1.0)  # scheduled 1 s ago: 2 s of the window are left
        waited = time.monotonic() - started
        # The window waited out (2 s left of it); within the attempt's 5 s start-to-close.
        assert WINDOW_S - 1.0 - 0.1 <= waited < 5.0
        [placed] = a.srv.exchange.all_orders()
        assert order.id == placed.id and a.srv.stats[CREATE] == 2
    assert "absence confirmed" in _messages(caplog)


async def test_a_found_order_in_the_lists_ends_the_window_before_the_lookup_sees_it(
    tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    async with attempts(tmp_path, lookup_lag_s=30, list_lag_s=0) as a:
        a.srv.faults.add(FaultRule(endpoint=CREATE, kind="accept_then_drop"))
        await a.fails("OrderStatusUnknown")
        started = time.monotonic()
        order = await a.run(queued_s=1.0)
        # Before the window's end (2 s left of it), after which the lists are read anyway.
        assert time.monotonic() - started < WINDOW_S - 1.0
        [placed] = a.srv.exchange.all_orders()
        assert order.id == placed.id and order.fee_base > 0 and a.srv.stats[CREATE] == 1
    assert "found by recent orders" in _messages(caplog)


async def test_a_window_longer_than_the_attempt_creates_nothing(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with attempts(tmp_path) as a:
        a.srv.faults.add(FaultRule(endpoint=CREATE, kind="http_5xx", status=503))
        await a.fails("OrderStatusUnknown")
        # A 3 s window cannot close inside a 3 s attempt (which sends nothing in its last
        # half second): it ends unresolved, retryable, and the next attempt goes on.
        await a.fails("OrderStatusUnknown", timeout_s=3.0)
        assert a.srv.stats[CREATE] == 1 and a.srv.exchange.all_orders() == []
    assert "window still open" in _messages(caplog)


async def test_an_attempt_past_its_own_deadline_sends_no_create(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with attempts(tmp_path, lookup_lag_s=0, list_lag_s=0) as a:
        # The lookup takes longer than the attempt may run: Temporal has timed it out and
        # may be running the next attempt, so this (zombie) attempt must not create.
        a.srv.faults.add(FaultRule(endpoint="GET /api/v3/order", kind="latency", seconds=2.2))
        await a.fails("OrderStatusUnknown", timeout_s=2.0)
        assert a.srv.stats[CREATE] == 0
    assert "ran out of time; nothing is sent after its deadline" in _messages(caplog)


async def test_a_duplicate_answer_waits_for_the_lagging_lookup(tmp_path):
    async with attempts(tmp_path, lookup_lag_s=2.5, list_lag_s=2.5) as a:
        # An order with our id rests at the exchange (open, so Binance refuses the id), too
        # young for the lookup and the lists to show it.
        await _rest_an_order_with_our_id(a.srv)
        order = await a.run()
        [resting] = a.srv.exchange.all_orders()
        assert order.id == resting.id and not order.is_final
        assert a.srv.stats[CREATE] == 2  # ours was refused: "Duplicate order sent."


async def test_a_duplicate_whose_order_stays_invisible_ends_the_attempt_unknown(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with attempts(tmp_path, lookup_lag_s=30, list_lag_s=30) as a:
        await _rest_an_order_with_our_id(a.srv)
        # Refused as a duplicate, the order cannot be found before the attempt's deadline:
        # never created again, and retryable (the next attempt looks for it again).
        failure = await a.fails("OrderStatusUnknown", timeout_s=2.0)
        assert not failure.non_retryable
        assert len(a.srv.exchange.all_orders()) == 1 and a.srv.stats[CREATE] == 2
    assert "duplicate, but not visible yet" in _messages(caplog)
