"""Build the configured exchange: the paper simulator, a real exchange through ccxt, or
dry-run (real market data, simulated orders) when ``GLOBAL_TRADING=false``."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from trader.config import Settings
from trader.exchange.ccxt_adapter import CcxtExchange
from trader.exchange.dry_run import DryRunExchange, LiveTickerFeed, Prices
from trader.exchange.generated import GeneratedMarket, GeneratedMarketConfig
from trader.exchange.paper import PaperExchange, PaperFaults
from trader.exchange.port import Exchange
from trader.hub import MarketHub

log = logging.getLogger(__name__)


def build_exchange(settings: Settings) -> Exchange:
    """One exchange per process: activities and the market-data hub share it.

    Raises:
        ConfigError: an unknown exchange id or an unusable sandbox/URL setting.
    """
    if settings.exchange == "paper":
        return build_paper(settings)
    # Dry-run reads only public market data: without the keys no order can ever be signed.
    trading = settings.global_trading
    live = CcxtExchange(
        settings.exchange,
        api_key=settings.exchange_api_key if trading else None,
        api_secret=settings.exchange_api_secret if trading else None,
        sandbox=settings.exchange_sandbox,
        api_url=settings.exchange_api_url,
        tickers_chunk_size=settings.tickers_chunk_size,
        timeout_s=settings.exchange_timeout_seconds,
        rate_limit_ms=settings.exchange_rate_limit_ms,
        streams=settings.market_streams and trading,  # dry-run polls, as it always did
    )
    if trading:
        log.info("%s: LIVE trading (orders go to the exchange)", live.name)
        return live
    log.warning(
        "%s: DRY-RUN (GLOBAL_TRADING=false): live market data, orders SIMULATED by "
        "the paper exchange; nothing is sent to the exchange",
        live.name,
    )
    return build_dry_run(settings, live)


def build_dry_run(
    settings: Settings, live: Exchange, *, db_path: Path | None = None, prices: Prices | None = None
) -> DryRunExchange:
    """Orders go to a paper account (its own SQLite file, by default
    ``dryrun-<exchange>.sqlite``) priced from the live tickers (``prices``' when given)."""
    paper = settings.paper
    feed = LiveTickerFeed()
    quotes = {s.split("/")[1] for s in settings.watchlist}
    simulator = PaperExchange(
        feed,
        db_path=db_path or settings.data_dir / f"dryrun-{settings.exchange}.sqlite",
        quote_balances={q: paper.quote_balance for q in quotes},
        spread_bps=paper.spread_bps,
        depth_levels=paper.depth_levels,
        level_liquidity_quote=paper.level_liquidity_quote,
        fee_rate=paper.fee_rate,
        name=settings.exchange,
    )
    return DryRunExchange(live, simulator, feed, prices=prices)


def build_paper(settings: Settings) -> PaperExchange:
    paper = settings.paper
    db_path = settings.data_dir / "paper.sqlite"
    # Every process must see the same generated prices: the origin is fixed in the database.
    origin = PaperExchange.origin_ms_for(db_path, int(time.time() * 1000))
    feed = GeneratedMarket(
        GeneratedMarketConfig(
            seed=paper.seed,
            tick_ms=paper.tick_ms,
            volatility_bps=paper.volatility_bps,
            jump_probability=paper.jump_probability,
            jump_bps=paper.jump_bps,
            start_prices=paper.start_prices,
        ),
        origin_ms=origin,
    )
    quotes = {s.split("/")[1] for s in paper.start_prices}
    faults = PaperFaults(
        create_latency_s=paper.create_latency_s,
        accept_then_hang_s=paper.accept_then_hang_s,
        fail_creates=paper.fail_creates,
        max_fill_ratio=paper.max_fill_ratio,
    )
    return PaperExchange(
        feed,
        db_path=db_path,
        quote_balances={q: paper.quote_balance for q in quotes},
        spread_bps=paper.spread_bps,
        depth_levels=paper.depth_levels,
        level_liquidity_quote=paper.level_liquidity_quote,
        fee_rate=paper.fee_rate,
        faults=faults,
        name="paper",
    )


def build_hub(settings: Settings, exchange: Exchange) -> MarketHub:
    """The market-data hub of a worker (or the legacy engine) over its exchange."""
    return MarketHub(
        exchange,
        poll_interval_s=settings.market_poll_interval_s,
        max_price_age_s=settings.max_price_age_seconds,
        order_price_age_s=settings.order_price_age_seconds,
        stream_stall_s=settings.stream_stall_seconds,
    )
