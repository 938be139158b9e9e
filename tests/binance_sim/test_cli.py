"""The command line's feed choices (the process itself: test_process.py)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.conftest import SHARED_DATA
from trader.binance_sim.__main__ import _parser, build_feed, origin_ms
from trader.exchange.feed import StaticFeed
from trader.exchange.generated import GeneratedMarket
from trader.exchange.replay import ReplayFeed


def test_static_prices_and_markets_from_their_magnitude():
    feed = build_feed(
        _parser().parse_args(["--static", "BTC/USDT=65000", "--static", "ADA/BTC=0.000053"]), 0
    )
    assert isinstance(feed, StaticFeed) and feed.symbols == ["ADA/BTC", "BTC/USDT"]
    assert feed.mid("ADA/BTC", 0) == D("0.000053")
    assert feed.market("ADA/BTC").price_tick <= D("1e-8")


def test_generated_market_keeps_its_origin_in_the_data_dir(tmp_path):
    args = _parser().parse_args(
        ["--generated", "--seed", "3", "--symbols", "ETH/USDT=3000", "--data-dir", str(tmp_path)]
    )
    assert origin_ms(args, 1_000) == 1_000
    assert origin_ms(args, 9_000) == 1_000  # a restart continues the same path
    feed = build_feed(args, 1_000)
    assert isinstance(feed, GeneratedMarket) and feed.symbols == ["ETH/USDT"]
    assert feed.mid("ETH/USDT", 1_000) == D(3000)


@pytest.mark.skipif(not (SHARED_DATA / "ohlcv").is_dir(), reason="shared data not present")
def test_replay_with_start_speed_and_symbols():
    args = _parser().parse_args(
        [
            "--replay",
            str(SHARED_DATA / "ohlcv"),
            "--speed",
            "300",
            "--start",
            "2018-01-15T00:00",
            "--symbols",
            "ETH/BTC",
        ]
    )
    feed = build_feed(args, 0)
    assert isinstance(feed, ReplayFeed) and feed.symbols == ["ETH/BTC"]
    assert feed.speed == 300 and feed.replay_ms(1_000) == 1515974400000 + 300_000


def test_bad_pairs_are_refused():
    with pytest.raises(SystemExit):
        build_feed(_parser().parse_args(["--static", "BTC/USDT"]), 0)


@pytest.mark.skipif(not (SHARED_DATA / "ohlcv").is_dir(), reason="shared data not present")
def test_a_start_with_an_offset_keeps_it():
    args = _parser().parse_args(
        [
            "--replay",
            str(SHARED_DATA / "ohlcv"),
            "--symbols",
            "ETH/BTC",
            "--start",
            "2018-01-15T02:00+02:00",
        ]
    )  # 00:00 UTC
    feed = build_feed(args, 0)
    assert isinstance(feed, ReplayFeed) and feed.replay_ms(0) == 1515974400000
