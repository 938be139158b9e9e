"""Build the configured exchange (the paper simulator on a generated market, for now)."""

from __future__ import annotations

import time

from trader.config import Settings
from trader.core.errors import ConfigError
from trader.exchange.generated import GeneratedMarket, GeneratedMarketConfig
from trader.exchange.paper import PaperExchange, PaperFaults


def build_exchange(settings: Settings) -> PaperExchange:
    if settings.exchange != "paper":
        raise ConfigError(
            f"EXCHANGE={settings.exchange!r}: only the paper exchange is available in this "
            "version (real exchanges through ccxt come next)")
    paper = settings.paper
    db_path = settings.data_dir / "paper.sqlite"
    # Every process must see the same generated prices: the origin is fixed in the database.
    origin = PaperExchange.origin_ms_for(db_path, int(time.time() * 1000))
    feed = GeneratedMarket(GeneratedMarketConfig(
        seed=paper.seed, tick_ms=paper.tick_ms, volatility_bps=paper.volatility_bps,
        jump_probability=paper.jump_probability, jump_bps=paper.jump_bps,
        start_prices=paper.start_prices,
    ), origin_ms=origin)
    quotes = {s.split("/")[1] for s in paper.start_prices}
    faults = PaperFaults(
        create_latency_s=paper.create_latency_s, accept_then_hang_s=paper.accept_then_hang_s,
        fail_creates=paper.fail_creates, max_fill_ratio=paper.max_fill_ratio,
    )
    return PaperExchange(
        feed, db_path=db_path, quote_balances={q: paper.quote_balance for q in quotes},
        spread_bps=paper.spread_bps, depth_levels=paper.depth_levels,
        level_liquidity_quote=paper.level_liquidity_quote, fee_rate=paper.fee_rate,
        faults=faults, name="paper",
    )
