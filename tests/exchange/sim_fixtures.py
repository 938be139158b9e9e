"""The local Binance-compatible server and the real ccxt adapter pointed at it over HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any, TypedDict, Unpack

from tests.markets import ADA_BTC, BTC_USDT, ETH_USDT
from trader.binance_sim import SimConfig, SimServer
from trader.core.market import MarketInfo
from trader.exchange.ccxt_adapter import CcxtExchange
from trader.exchange.feed import StaticFeed

KEY, SECRET = "simKEY0123456789abcdef", "simSECRET0123456789abcdefghij"

MARKETS = {m.symbol: m for m in (BTC_USDT, ETH_USDT, ADA_BTC)}
PRICES = {"BTC/USDT": D("100"), "ETH/USDT": D("2000"), "ADA/BTC": D("0.00005300")}


def generated_markets(n: int) -> dict[str, MarketInfo]:
    """``n`` extra USDT markets (S000/USDT ...) for watchlist-size experiments."""
    return {
        f"S{i:03d}/USDT": MarketInfo(
            symbol=f"S{i:03d}/USDT",
            base=f"S{i:03d}",
            quote="USDT",
            price_tick=D("0.001"),
            amount_step=D("0.1"),
            min_amount=D("0.1"),
            min_cost=D("5"),
        )
        for i in range(n)
    }


def sim_feed(extra: int = 0) -> StaticFeed:
    feed = StaticFeed({**MARKETS, **generated_markets(extra)})
    for symbol in feed.symbols:
        feed.set_price(symbol, PRICES.get(symbol, D("10")))
    return feed


def settable_feed(srv: SimServer) -> StaticFeed:
    """The feed of a server ``sim_and_adapter`` started: a StaticFeed a test sets prices in."""
    assert isinstance(srv.feed, StaticFeed)
    return srv.feed


class AdapterOptions(TypedDict, total=False):
    """CcxtExchange's own options a test may set (mypy checks them against its signature)."""

    tickers_chunk_size: int
    timeout_s: float
    rate_limit_ms: float | None
    streams: bool


@contextlib.asynccontextmanager
async def sim_and_adapter(
    tmp_path: Path,
    *,
    extra_markets: int = 0,
    balances: dict[str, D] | None = None,
    sim: dict[str, Any] | None = None,
    exchange_cls: type[CcxtExchange] = CcxtExchange,
    **adapter: Unpack[AdapterOptions],
) -> AsyncIterator[tuple[SimServer, CcxtExchange]]:
    """A fresh server (its own data dir; ``sim``: more SimConfig settings) and a
    CcxtExchange for it, closed afterwards."""
    config = SimConfig(
        feed=sim_feed(extra_markets),
        data_dir=tmp_path / "sim",
        api_key=KEY,
        api_secret=SECRET,
        balances=balances or {"USDT": D("10000"), "BTC": D("1")},
        **(sim or {}),
    )
    (tmp_path / "sim").mkdir(exist_ok=True)
    async with SimServer(config) as srv:
        ex = exchange_cls(
            "binance", api_key=_secret(KEY), api_secret=_secret(SECRET), api_url=srv.url, **adapter
        )
        try:
            yield srv, ex
        finally:
            await ex.close()


def no_fills_in_create_response(ex: CcxtExchange) -> None:
    """Like most exchanges (or Binance's RESULT answer), the create response carries no
    fills: the adapter then reads the order's trades to learn its fees."""
    ex._ex.options["newOrderRespType"] = {"limit": "RESULT", "market": "RESULT"}


def _secret(value: str):  # noqa: ANN202
    from pydantic import SecretStr

    return SecretStr(value)
