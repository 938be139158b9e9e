"""A simulated Binance server per test and the real ccxt client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import ccxt.async_support as ccxt
import ccxt.pro as ccxt_pro
import pytest

from tests.markets import ADA_BTC
from tests.markets import BTC_USDT_FINE as BTC_USDT
from trader.binance_sim import SimConfig, SimServer
from trader.exchange.feed import StaticFeed

PRICES = {"BTC/USDT": D("65000"), "ADA/BTC": D("0.00005300")}


def static_feed() -> StaticFeed:
    feed = StaticFeed({m.symbol: m for m in (BTC_USDT, ADA_BTC)})
    for symbol, price in PRICES.items():
        feed.set_price(symbol, price)
    return feed


def ccxt_client(url: str, *, key: str = "sim-key", secret: str = "sim-secret") -> ccxt.binance:
    """The real ccxt Binance client with every REST base URL pointed at ``url``."""
    ex = ccxt.binance(
        {
            "apiKey": key,
            "secret": secret,
            "enableRateLimit": False,
            "options": dict(_OPTIONS),
        }
    )
    # Every base URL ccxt knows is replaced: a call that strays from /api/v3 gets a 404
    # from the simulator instead of reaching the real Binance.
    ex.urls["api"] = {
        name: f"{url}/{_API_PATHS.get(name, 'unsupported/' + name)}" for name in ex.urls["api"]
    }
    return ex


def ccxt_pro_client(url: str) -> ccxt_pro.binance:
    """The real ccxt.pro Binance client: REST as ``ccxt_client``, streams from ``url``'s
    ``/ws`` (ccxt connects to ``<ws>/<n>`` and subscribes by message)."""
    ex = ccxt_pro.binance({"enableRateLimit": False, "options": dict(_OPTIONS)})
    ex.urls["api"] = {
        name: f"{url}/{_API_PATHS.get(name, 'unsupported/' + name)}"
        for name in ex.urls["api"]
        if name != "ws"
    } | {"ws": {"spot": url.replace("http://", "ws://") + "/ws"}}
    return ex


_OPTIONS = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}
_API_PATHS = {
    "public": "api/v3",
    "private": "api/v3",
    "v1": "api/v1",
    "sapi": "sapi/v1",
    "sapiV2": "sapi/v2",
    "sapiV3": "sapi/v3",
    "sapiV4": "sapi/v4",
}


@pytest.fixture
async def server(tmp_path) -> AsyncIterator[SimServer]:
    config = SimConfig(
        feed=static_feed(), data_dir=tmp_path, balances={"USDT": D("10000"), "BTC": D("1")}
    )
    async with SimServer(config) as srv:
        yield srv


@pytest.fixture
async def client(server: SimServer) -> AsyncIterator[ccxt.binance]:
    ex = ccxt_client(server.url)
    yield ex
    await ex.close()


async def signed(
    url: str,
    method: str,
    path: str,
    params: dict[str, str],
    *,
    secret: str = "sim-secret",
    key: str = "sim-key",
    shift_ms: int = 0,
) -> tuple[int, Any]:
    """A signed request made by hand, as Binance's docs describe (no ccxt in between); the
    status and the decoded JSON body (an object or a list, as the endpoint answers)."""
    import hashlib
    import hmac
    import time
    from urllib.parse import urlencode

    import aiohttp

    query = urlencode({**params, "timestamp": str(int(time.time() * 1000) + shift_ms)})
    sig = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    async with (
        aiohttp.ClientSession() as s,
        s.request(
            method, f"{url}{path}?{query}&signature={sig}", headers={"X-MBX-APIKEY": key}
        ) as resp,
    ):
        return resp.status, await resp.json()
