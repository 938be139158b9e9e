"""ccxt's unified structures -> domain values: exact Decimals, steps, fees in quote."""

from __future__ import annotations

import logging
from decimal import Decimal as D

import pytest

from trader.exchange import ccxt_convert as cv

_SPOT = {
    "symbol": "ETH/BTC",
    "base": "ETH",
    "quote": "BTC",
    "spot": True,
    "active": True,
    "taker": 0.001,
    "maker": 0.001,
}


def test_tick_size_precision_gives_exact_steps_and_limits() -> None:
    m = cv.market_info(
        {
            **_SPOT,
            "precision": {"price": 5e-05, "amount": 0.001},
            "limits": {"amount": {"min": 0.001}, "cost": {"min": 0.0001}},
        },
        cv.TICK_SIZE,
    )
    assert m is not None
    assert (m.price_tick, m.amount_step, m.min_amount, m.min_cost) == (
        D("0.00005"),
        D("0.001"),
        D("0.001"),
        D("0.0001"),
    )
    assert m.taker_fee == D("0.001")


def test_decimal_places_precision_and_untradable_markets() -> None:
    m = cv.market_info(
        {**_SPOT, "precision": {"price": 2, "amount": 4}, "limits": {}}, cv.DECIMAL_PLACES
    )
    assert m is not None and (m.price_tick, m.amount_step) == (D("0.01"), D("0.0001"))
    assert m.min_amount == D("0.0001")  # never below one step
    assert (
        cv.market_info({**_SPOT, "precision": {"price": 3, "amount": 3}}, cv.SIGNIFICANT_DIGITS)
        is None
    )
    assert (
        cv.market_info(
            {**_SPOT, "spot": False, "precision": {"price": 1, "amount": 1}}, cv.TICK_SIZE
        )
        is None
    )
    assert (
        cv.market_info(
            {**_SPOT, "active": False, "precision": {"price": 1, "amount": 1}}, cv.TICK_SIZE
        )
        is None
    )


def test_fees_in_quote_base_and_a_third_currency(caplog: pytest.LogCaptureFixture) -> None:
    fees = [("USDT", D("0.1")), ("BTC", D("0.00001")), ("BNB", D("0.002")), ("XYZ", D("5"))]
    with caplog.at_level(logging.WARNING):
        fee, fee_base = cv.split_fees(
            fees, base="BTC", quote="USDT", average=D("60000"), rates={"BNB": D("600")}
        )
    assert fee_base == D("0.00001")
    assert fee == D("0.1") + D("0.00001") * 60000 + D("0.002") * 600  # XYZ counted as 0
    assert "XYZ" in caplog.text


def test_order_average_is_cost_over_filled_and_statuses() -> None:
    m = cv.market_info({**_SPOT, "precision": {"price": 5e-05, "amount": 0.001}}, cv.TICK_SIZE)
    assert m is not None
    raw = {
        "id": "7",
        "clientOrderId": "abc",
        "side": "buy",
        "type": "limit",
        "timeInForce": "IOC",
        "amount": 0.3,
        "price": 0.05205,
        "filled": 0.3,
        "cost": 0.015612,
        "status": "expired",
        "timestamp": 1,
    }
    o = cv.order(raw, m, fee=D(0), fee_base=D(0), client_order_id="abc")
    assert o.average == D("0.05204") and o.cost == D("0.015612")
    assert o.status.value == "canceled" and o.time_in_force.value == "IOC"
    assert (
        cv.order(
            {**raw, "filled": 0, "cost": 0, "status": "open"},
            m,
            fee=D(0),
            fee_base=D(0),
            client_order_id="abc",
        ).average
        is None
    )


def test_fee_items_from_an_order_or_its_trades() -> None:
    assert cv.fee_items({"fees": [{"currency": "BNB", "cost": 0.01}], "fee": None}) == [
        ("BNB", D("0.01"))
    ]
    trades = [{"fee": {"currency": "ETH", "cost": 0.0003}}, {"fee": {"currency": "ETH", "cost": 0}}]
    assert cv.fee_items(trades) == [("ETH", D("0.0003"))]


def test_client_ids_that_do_not_fit_are_sent_as_a_deterministic_digest() -> None:
    from trader.core import ids
    from trader.exchange.ccxt_setup import client_id_rule

    ours = ids.client_order_id("trader:okx:BTC-USDT", "18c0f2a9b1e", 7)  # 36 characters
    binance, okx = client_id_rule("binance"), client_id_rule("okx")
    assert binance.to_exchange(ours) == ours  # fits: sent as is
    sent = okx.to_exchange(ours)
    assert okx.pattern.fullmatch(sent) and len(sent) == 32
    assert okx.to_exchange(ours) == sent  # a retry, a lookup, a cancel: the same id
    other = ids.client_order_id("trader:okx:BTC-USDT", "18c0f2a9b1e", 8)
    assert okx.to_exchange(other) != sent


def test_balances_free_and_total_and_a_missing_free_taken_at_total():
    from trader.exchange.ccxt_convert import balances

    out = balances({"total": {"BTC": 1.5, "USDT": 100.0, "XRP": None}, "free": {"BTC": 0.5}})
    assert out["BTC"].free == D("0.5") and out["BTC"].total == D("1.5")
    assert out["USDT"].free == out["USDT"].total == D("100.0")  # no free reported
    assert "XRP" not in out


async def test_the_exchange_side_form_of_our_ids_is_the_one_sent() -> None:
    # The validator compares another worker's orders against this (no process-local map).
    from trader.core import ids
    from trader.exchange.ccxt_adapter import CcxtExchange

    ours = ids.client_order_id("trader:okx:BTC-USDT", "18c0f2a9b1e", 7)
    okx = CcxtExchange("okx")
    try:
        assert okx.exchange_client_id(ours) == okx._sent(ours) != ours
    finally:
        await okx.close()
