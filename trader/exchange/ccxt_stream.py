"""Top-of-book WebSocket streams through ccxt.pro (``watch_bids_asks``), for the hub.

A client of its own, without credentials (public streams), made at the first watch and
sharing the REST client's markets.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from trader.core.market import Ticker
from trader.exchange import ccxt_convert as cv


class BookStreams:
    def __init__(
        self,
        make_client: Callable[[], Any],
        *,
        markets: Callable[[], tuple[Any, Any]],
        call: Callable[..., Awaitable[Any]],
        last: dict[str, Ticker],
    ) -> None:
        self._make, self._markets, self._call, self._last = make_client, markets, call, last
        self._ws: Any = None
        self._seen: dict[str, Any] = {}  # symbol -> the last ccxt bids/asks dict read

    def _client(self) -> Any:
        if self._ws is None:
            self._ws = self._make()
            self._ws.set_markets(*self._markets())
        return self._ws

    async def watch(self, symbols: list[str], *, connection: int) -> dict[str, Ticker | None]:
        """Wait for the next update of any of ``symbols`` (one subscription of the whole
        list, on stream connection number ``connection``) and return every symbol whose
        book changed since the last call: a watch returns the frame that woke it, and
        frames arriving before the next call are only in ccxt's cache (``bidsasks``).

        A ticker's ``last`` is the mid of bid and ask (a book stream carries no trades), its
        24 h volume the last ticker request's (a book stream has none), ``ts_ms`` the time
        it was read (as for a ticker request). Bid and ask are the frame's exact strings
        (``info``: ``b``, ``a``), not ccxt's floats; a book that is not ``0 < bid <= ask``
        (Binance sends ``"b":"0.00000000"`` for an empty side) maps to None: no price.
        """
        ws = self._client()
        # ccxt gives every new subscription set a new connection (a round robin over
        # ``streamLimits``); pinning the set to its number moves a changed list onto the
        # same connection (ccxt/pro/binance.py ``stream``: a known hash keeps its stream).
        by_hash = ws.options.setdefault("streamBySubscriptionsHash", {})
        by_hash.setdefault("bookTicker::" + ",".join(symbols), str(connection))
        await self._call(ws.watch_bids_asks(symbols), client=ws)
        now = int(time.time() * 1000)
        out: dict[str, Ticker | None] = {}
        for symbol in symbols:
            raw = ws.bidsasks.get(symbol)
            if raw is None or raw is self._seen.get(symbol):
                continue
            self._seen[symbol] = raw
            info = raw.get("info") or {}
            bid, ask = cv.dec(info.get("b", raw.get("bid"))), cv.dec(info.get("a", raw.get("ask")))
            if bid is None or ask is None or not 0 < bid <= ask:
                out[symbol] = None
                continue
            before = self._last.get(symbol)
            volume = before.quote_volume if before is not None else Decimal(0)
            out[symbol] = self._last[symbol] = Ticker(
                symbol=symbol,
                ts_ms=now,
                bid=bid,
                ask=ask,
                last=(bid + ask) / 2,
                quote_volume=volume,
            )
        return out

    async def reconnect(self, connection: int) -> None:
        """Close stream connection ``connection``: the next watch on it dials anew."""
        if self._ws is None:
            return
        for url, client in list(self._ws.clients.items()):
            if url.rstrip("/").endswith(f"/{connection}"):
                self._ws.clients.pop(url, None)
                await client.close()

    async def unwatch(self, symbols: list[str]) -> None:
        if self._ws is not None:
            await self._call(self._ws.un_watch_bids_asks(symbols), client=self._ws)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
