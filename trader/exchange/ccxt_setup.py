"""Building a ccxt client for the adapter: options, sandbox, API base URL, client id rules."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
from pydantic import SecretStr

from trader.core.errors import ConfigError
from trader.exchange import ccxt_throttle

log = logging.getLogger(__name__)

# Where each exchange takes our client order id (create, then lookup/cancel), what it
# accepts and how long it may be. ccxt puts a given id into the request unchanged (it
# generates a broker-prefixed one only when none is given). trader.core.ids builds 36
# characters of [A-Za-z0-9].
_BINANCE = ("newClientOrderId", "origClientOrderId", r"[.A-Z:/a-z0-9_-]{1,36}", 36)
_CLIENT_ID_RULES: dict[str, tuple[str, str, str, int]] = {
    "binance": _BINANCE,
    "binanceus": _BINANCE,
    "okx": ("clientOrderId", "clientOrderId", r"[A-Za-z0-9]{1,32}", 32),
}
_DEFAULT_RULE = ("clientOrderId", "clientOrderId", r"[.A-Z:/a-z0-9_-]{1,36}", 36)


@dataclass(frozen=True)
class ClientIdRule:
    create_param: str
    lookup_param: str
    pattern: re.Pattern[str]
    max_len: int

    def to_exchange(self, client_order_id: str) -> str:
        """Our id as this exchange takes it: unchanged when it fits, else a digest of it
        cut to the exchange's length. The digest is as deterministic as the id itself, so a
        retried create, a lookup and a cancel all send the same one (idempotency holds)."""
        if self.pattern.fullmatch(client_order_id):
            return client_order_id
        return ("dt" + hashlib.sha256(client_order_id.encode()).hexdigest())[: self.max_len]


def client_id_rule(exchange_id: str) -> ClientIdRule:
    """Where and in what form the exchange takes our client order id."""
    create, lookup, pattern, max_len = _CLIENT_ID_RULES.get(exchange_id, _DEFAULT_RULE)
    return ClientIdRule(create, lookup, re.compile(pattern), max_len)


def rebase(urls: Any, base: str) -> Any:
    """Every URL in ccxt's ``urls['api']`` (a string or nested dicts) moved onto ``base``,
    keeping its path: ``https://api.binance.com/api/v3`` -> ``<base>/api/v3``."""
    if isinstance(urls, str):
        parts = urlsplit(urls)
        return base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    if isinstance(urls, dict):
        return {key: rebase(value, base) for key, value in urls.items()}
    return urls


def default_rate_limit_ms(exchange_id: str) -> float:
    """ccxt's pacing for the exchange: milliseconds per unit of request weight."""
    return float(getattr(ccxt_async, exchange_id)().describe()["rateLimit"])


def configure(
    exchange_id: str,
    *,
    api_key: SecretStr | None,
    api_secret: SecretStr | None,
    sandbox: bool,
    api_url: str | None,
    timeout_s: float,
    rate_limit_ms: float | None = None,
    pro: bool = False,
) -> Any:
    """A ccxt async client for spot trading, throttled by ccxt's own rate model
    (its leaky bucket, refilled while idle too: ``ccxt_throttle``; ``rate_limit_ms`` per
    unit of weight; None: ccxt's default for the exchange);
    ``pro``: the ccxt.pro client of the exchange (its WebSocket streams too)."""
    config: dict[str, Any] = {"enableRateLimit": True, "timeout": int(timeout_s * 1000)}
    if rate_limit_ms is not None:
        config["rateLimit"] = rate_limit_ms
    if api_key is not None:
        config["apiKey"] = api_key.get_secret_value()
    if api_secret is not None:
        config["secret"] = api_secret.get_secret_value()
    ex = getattr(ccxt_pro if pro else ccxt_async, exchange_id)(config)
    ccxt_throttle.install(ex)  # requests after a pause no longer wait for nothing
    # Spot only: load_markets must not call the futures, margin or (signed) currency
    # endpoints; one exchangeInfo request is all the trader needs.
    options = ex.options
    fetch_markets = options.get("fetchMarkets")
    if isinstance(fetch_markets, dict):
        options["fetchMarkets"] = {**fetch_markets, "types": ["spot"]}
    elif isinstance(fetch_markets, list):
        options["fetchMarkets"] = ["spot"]
    for key in ("fetchCurrencies", "fetchMargins"):
        if key in options:
            options[key] = False
    if sandbox:
        try:
            ex.set_sandbox_mode(True)
        except ccxt.NotSupported:
            raise ConfigError(
                f"EXCHANGE_SANDBOX=true: {exchange_id} has no sandbox in ccxt; "
                "use EXCHANGE_API_URL for a testnet instead"
            ) from None
    if api_url:
        if not urlsplit(api_url).scheme.startswith("http"):
            raise ConfigError(f"EXCHANGE_API_URL must be an http(s) URL, got {api_url!r}")
        ws_urls = ex.urls["api"].get("ws")
        ex.urls["api"] = rebase(ex.urls["api"], api_url)
        if ws_urls is not None:  # the streams on the same host: ws:// for http://
            ex.urls["api"]["ws"] = rebase(ws_urls, "ws" + api_url.removeprefix("http"))
    # ccxt logs every request's headers (with the API key) at DEBUG: never let that through.
    # (Its own level, not inherited: a DEBUG root logger must not switch it on.)
    ccxt_log = logging.getLogger("ccxt")
    ccxt_log.setLevel(max(ccxt_log.level, logging.INFO))
    return ex


def acknowledge_open_orders_cost(ex: Any) -> None:
    """Let ``fetch_open_orders()`` without a symbol through: ccxt refuses it on exchanges
    where it weighs more (Binance: 80 against 6 per symbol) unless told the caller knows.
    Only the reconciliation client, which has its own budget for it, is told."""
    fetch = ex.options.get("fetchOpenOrders")
    if isinstance(fetch, dict):
        ex.options["fetchOpenOrders"] = {**fetch, "warnWithoutSymbol": False}
    ex.options["warnOnFetchOpenOrdersWithoutSymbol"] = False  # ccxt's older spelling


class _Priced(Exception):
    """Raised by the throttle of ``request_cost``: the request is priced, not sent."""


async def request_cost(ex: Any, read: Callable[[], Awaitable[Any]]) -> float:
    """The cost ccxt's throttler would charge for the first request ``read`` sends, found
    without sending it (0: ``read`` sends none, e.g. refused without arguments)."""
    priced: list[float] = []

    async def throttle(cost: float | None = None) -> None:
        priced.append(float(ex.throttler.config["cost"] if cost is None else cost))
        raise _Priced

    ex.throttle = throttle
    try:
        await read()
    except _Priced:
        pass
    except Exception as exc:  # e.g. ArgumentsRequired: no request; never fail the caller
        log.debug("%s: not priced (%s)", ex.id, type(exc).__name__)
    finally:
        del ex.throttle  # the class's own again
    return sum(priced)


_LISTS_EVERYTHING = frozenset({"binance", "binanceus", "kraken"})
"""Exchanges whose all-symbols open-orders listing returns every open order, unpaged."""
LISTING_PAGE = 20
"""Orders asked for in one all-symbols listing elsewhere (OKX pages at 100, Bybit at 20 by
default, KuCoin and Bitget too): a full page may not be all of them, and that check reads
per symbol instead."""


def listing_page(exchange_id: str) -> int | None:
    """The page size to ask an all-symbols open-orders listing for (None: unpaged)."""
    return None if exchange_id in _LISTS_EVERYTHING else LISTING_PAGE


def listing_complete(exchange_id: str, rows: int) -> bool:
    """An all-symbols listing of ``rows`` orders is all of them (not a full page)."""
    page = listing_page(exchange_id)
    return page is None or rows < page


def has_book_stream(exchange_id: str) -> bool:
    """ccxt.pro streams this exchange's top of book (``watch_bids_asks``)."""
    cls = getattr(ccxt_pro, exchange_id, None)
    return cls is not None and bool(cls().has.get("watchBidsAsks"))
