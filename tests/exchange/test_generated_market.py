"""The generated market is deterministic across processes and exact in Decimal."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from trader.exchange.generated import GeneratedMarket, GeneratedMarketConfig, market_for

CFG = GeneratedMarketConfig(
    seed=7,
    tick_ms=1000,
    volatility_bps=D(8),
    start_prices={"BTC/USDT": D(65000), "XRP/ETH": D("0.000053")},
)


def test_same_settings_same_prices_in_any_order_of_queries():
    a, b = GeneratedMarket(CFG, origin_ms=0), GeneratedMarket(CFG, origin_ms=0)
    times = [5_000_000, 10, 999_999, 3_600_000]
    first = [a.mid("BTC/USDT", t) for t in times]
    second = [b.mid("BTC/USDT", t) for t in reversed(times)][::-1]
    assert first == second
    other_seed = GeneratedMarket(CFG.model_copy(update={"seed": 8}), origin_ms=0)
    assert [other_seed.mid("BTC/USDT", t) for t in times] != first


@settings(max_examples=30)
@given(st.integers(0, 7_200_000))
def test_prices_are_exact_multiples_of_the_tick(ts):
    market = GeneratedMarket(CFG, origin_ms=0)
    for symbol in ("BTC/USDT", "XRP/ETH"):
        price = market.mid(symbol, ts)
        tick = market.market(symbol).price_tick
        assert price > 0 and price % tick == 0


def test_tiny_prices_get_fitting_precision():
    m = market_for("XRP/ETH", D("0.000053"))
    assert m.price_tick == D("1E-9") and m.min_cost < D("0.001")
    assert market_for("BTC/USDT", D(65000)).price_tick == D(1)


def test_drops_of_one_percent_from_a_running_peak_happen_within_an_hour():
    market = GeneratedMarket(CFG, origin_ms=0)
    peak, drops = D(0), 0
    for second in range(3600):
        price = market.mid("BTC/USDT", second * 1000)
        if price > peak:
            peak = price
        elif price <= peak * D("0.99"):
            drops += 1
            peak = price  # count distinct drops
    assert drops >= 1


def test_candles_summarize_the_walk():
    market = GeneratedMarket(CFG, origin_ms=0)
    [candle] = market.candles("BTC/USDT", since_ms=0, until_ms=59_999, limit=5)
    walk = [market.mid("BTC/USDT", s * 1000) for s in range(60)]
    assert (candle.open, candle.high, candle.low, candle.close) == (
        walk[0],
        max(walk),
        min(walk),
        walk[-1],
    )


def test_an_unknown_symbol_is_bad_symbol_for_every_query():
    import pytest

    from trader.core.errors import BadSymbol

    market = GeneratedMarket(CFG, origin_ms=0)
    for query in (
        lambda: market.mid("NOPE/USDT", 0),
        lambda: market.quote_volume("NOPE/USDT", 0),
        lambda: market.candles("NOPE/USDT", since_ms=0, until_ms=60_000, limit=1),
    ):
        with pytest.raises(BadSymbol, match="BTC/USDT"):
            query()


def test_candles_keep_the_last_limit_minutes_and_limit_zero_is_none():
    import time

    from trader.exchange.feed import StaticFeed

    static = StaticFeed({"BTC/USDT": market_for("BTC/USDT", D(65000))})
    static.set_price("BTC/USDT", D(65000))
    generated = GeneratedMarket(CFG, origin_ms=1_767_225_000_000)  # its walk starts here
    for feed in (static, generated):
        assert feed.candles("BTC/USDT", since_ms=0, until_ms=1_767_225_599_999, limit=0) == []
        started = time.monotonic()  # 56 years of minutes: only the last three are built
        last = feed.candles("BTC/USDT", since_ms=0, until_ms=1_767_225_599_999, limit=3)
        assert [c.ts_ms for c in last] == [1_767_225_420_000, 1_767_225_480_000, 1_767_225_540_000]
        assert time.monotonic() - started < 5
