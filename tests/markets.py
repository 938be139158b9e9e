"""The markets the tests trade, declared once (precision and minimums as Binance lists
them, or close)."""

from __future__ import annotations

from decimal import Decimal as D

from trader.core.market import MarketInfo

BTC_USDT = MarketInfo(
    symbol="BTC/USDT",
    base="BTC",
    quote="USDT",
    price_tick=D("0.01"),
    amount_step=D("0.0001"),
    min_amount=D("0.0001"),
    min_cost=D("5"),
)
BTC_USDT_FINE = BTC_USDT.model_copy(
    update={"amount_step": D("0.00001"), "min_amount": D("0.00001")}
)
"""BTC/USDT with Binance's finer amount step (the simulator's and the sizing tests')."""
ETH_USDT = MarketInfo(
    symbol="ETH/USDT",
    base="ETH",
    quote="USDT",
    price_tick=D("0.01"),
    amount_step=D("0.001"),
    min_amount=D("0.001"),
    min_cost=D("5"),
)
# BTC-quoted, priced like the shared 2018 data (5.3e-05): no USD-like rounding survives it.
ADA_BTC = MarketInfo(
    symbol="ADA/BTC",
    base="ADA",
    quote="BTC",
    price_tick=D("0.00000001"),
    amount_step=D("1"),
    min_amount=D("1"),
    min_cost=D("0.0001"),
)
