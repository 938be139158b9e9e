"""Each fault the local Binance server can inject, seen through the real ccxt client, becomes
the right domain error; on an order create, a transient failure is "unknown", and the order
is then found (or not) by its client order id."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from activities.errors import to_application_error
from tests.exchange.sim_fixtures import sim_and_adapter
from trader.binance_sim.faults import FaultRule
from trader.core import errors as e
from trader.core.market import OrderRequest, OrderSide, OrderType, TimeInForce

ORDER, TICKERS = "POST /api/v3/order", "GET /api/v3/ticker/24hr"


def _buy(coid: str) -> OrderRequest:
    return OrderRequest(
        symbol="BTC/USDT",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        amount=D("1"),
        price=D("101"),
        time_in_force=TimeInForce.IOC,
        client_order_id=coid,
    )


@pytest.mark.parametrize(
    ("kind", "extra", "error", "accepted"),
    [
        ("http_5xx", {"status": 503}, e.OrderStatusUnknown, False),
        ("http_5xx", {"status": 500}, e.OrderStatusUnknown, False),
        ("drop", {}, e.OrderStatusUnknown, False),
        ("accept_then_drop", {}, e.OrderStatusUnknown, True),
        ("accept_then_hang", {"seconds": 2}, e.OrderStatusUnknown, True),
        # Slower than the client's timeout: the client gave up before the server read the
        # order, so nothing was placed, but the client cannot know that.
        ("latency", {"seconds": 2}, e.OrderStatusUnknown, False),
        ("rate_limit", {"seconds": 4}, e.OrderStatusUnknown, False),
    ],
)
async def test_create_faults_are_unknown_and_resolved_by_lookup(
    tmp_path, kind, extra, error, accepted
):
    async with sim_and_adapter(tmp_path, timeout_s=1.0) as (srv, ex):
        await ex.load_markets()
        srv.faults.add(FaultRule(endpoint=ORDER, kind=kind, **extra))
        with pytest.raises(error) as err:
            await ex.create_order(_buy(f"dt{kind.replace('_', '')}"))
        app = to_application_error(err.value)
        assert app.type == "OrderStatusUnknown" and not app.non_retryable
        if kind == "rate_limit":
            assert err.value.retry_after == 4
            assert app.next_retry_delay is not None
            assert app.next_retry_delay.total_seconds() == 4
        if accepted:
            found = await ex.fetch_order("BTC/USDT", f"dt{kind.replace('_', '')}")
            assert found.filled == D("1")
        else:
            with pytest.raises(e.OrderNotFound):
                await ex.fetch_order("BTC/USDT", f"dt{kind.replace('_', '')}")
        assert len(srv.exchange.all_orders()) == (1 if accepted else 0)


@pytest.mark.parametrize(
    ("kind", "extra", "retry_after"),
    [
        ("http_5xx", {"status": 502}, None),
        # aiohttp silently repeats an idempotent GET once when a reused connection drops.
        ("drop", {"count": 2}, None),
        ("accept_then_hang", {"seconds": 2}, None),
        ("rate_limit", {"seconds": 2}, 2.0),
    ],
)
async def test_market_data_faults_are_retryable(tmp_path, kind, extra, retry_after):
    async with sim_and_adapter(tmp_path, timeout_s=1.0) as (srv, ex):
        await ex.load_markets()
        srv.faults.add(FaultRule(endpoint=TICKERS, kind=kind, **extra))
        with pytest.raises(e.RetryableExchangeError) as err:
            await ex.fetch_tickers(["BTC/USDT"])
        assert type(err.value) is e.RetryableExchangeError  # not "order status unknown"
        assert err.value.retry_after == retry_after
        assert "BTC/USDT" in await ex.fetch_tickers(["BTC/USDT"])  # next attempt works


async def test_short_latency_is_just_slow(tmp_path):
    async with sim_and_adapter(tmp_path, timeout_s=2.0) as (srv, ex):
        await ex.load_markets()
        srv.faults.add(FaultRule(endpoint=ORDER, kind="latency", seconds=0.3))
        order = await ex.create_order(_buy("dtslow"))
        assert order.filled == D("1")
