"""``SimControl``: an async client of the admin API (``/_sim/``) for tests and benchmarks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp

from trader.binance_sim.faults import FaultRule


class SimControl:
    """``async with SimControl("http://127.0.0.1:PORT") as sim: await sim.set_price(...)``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SimControl:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.request(method, f"{self.base_url}/_sim/{path}", json=body) as resp:
            data = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"{method} /_sim/{path}: {resp.status} {data}")
            return data

    async def add_fault(self, rule: FaultRule | dict[str, Any]) -> list[dict[str, Any]]:
        """Arm a fault; returns the armed rules."""
        body = rule.model_dump() if isinstance(rule, FaultRule) else rule
        return list((await self._call("POST", "faults", body))["armed"])

    async def faults(self) -> dict[str, Any]:
        """``{"armed": [rule...], "fired": [[endpoint, kind]...]}``."""
        return dict(await self._call("GET", "faults"))

    async def clear_faults(self) -> None:
        await self._call("DELETE", "faults")

    async def stats(self) -> dict[str, int]:
        """Requests per ``"METHOD /path"`` since the last reset."""
        return dict((await self._call("GET", "stats"))["requests"])

    async def reset_stats(self) -> None:
        await self._call("POST", "stats/reset")

    async def orders(self) -> list[dict[str, Any]]:
        """Every order ever accepted, oldest first (client_order_id, side, status, filled,
        accepted_ms, arrived_us, ...)."""
        return list(await self._call("GET", "orders"))

    async def set_price(self, symbol: str, price: Decimal | str) -> dict[str, Any]:
        """Set a static price; returns the event ``{symbol, price, ts_ms, ts_us}``."""
        return dict(await self._call("POST", "price", {"symbol": symbol, "price": str(price)}))

    async def price_events(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "events"))["prices"])

    async def balances(self) -> dict[str, dict[str, Decimal]]:
        """asset -> {"free", "locked", "total"} as Decimals."""
        raw = await self._call("GET", "balances")
        return {a: {k: Decimal(v) for k, v in b.items()} for a, b in raw.items()}

    async def set_balances(self, balances: dict[str, Decimal | str]) -> None:
        await self._call("POST", "balances", {a: str(v) for a, v in balances.items()})

    async def consistency(self) -> dict[str, Any]:
        """``{"lookup_lag_s", "list_lag_s", "duplicate_client_ids"}``."""
        return dict(await self._call("GET", "consistency"))

    async def set_consistency(self, **settings: float | str) -> dict[str, Any]:
        """Change any of ``lookup_lag_s``, ``list_lag_s`` (seconds) and
        ``duplicate_client_ids`` (``while_open`` / ``always``); returns all three."""
        return dict(await self._call("POST", "consistency", settings))

    async def clock(self) -> dict[str, int | None]:
        """``{"server_ms": ..., "replay_ms": ...}`` (replay_ms: the data instant shown now,
        for a ReplayFeed; else None)."""
        return dict(await self._call("GET", "clock"))

    async def streams(self) -> dict[str, Any]:
        """``{"connections": [{id, path, combined, streams, frames}], "connects",
        "frames_sent", "stalled", "delay_ms", "refusing"}``."""
        return dict(await self._call("GET", "streams"))

    async def drop_streams(self, symbol: str | None = None, *, refuse_seconds: float = 0) -> int:
        """Drop the stream connections (carrying ``symbol``); refuse new ones for a while.
        Returns how many were dropped."""
        body = {"symbol": symbol, "refuse_seconds": refuse_seconds}
        return int((await self._call("POST", "streams/disconnect", body))["dropped"])

    async def stall_streams(self, seconds: float, symbol: str | None = None) -> None:
        """Connections stay open, but no frame (of ``symbol``) goes out for ``seconds``."""
        await self._call("POST", "streams/stall", {"seconds": seconds, "symbol": symbol})

    async def delay_streams(self, ms: float, symbol: str | None = None) -> None:
        """Hold every frame (of ``symbol``) ``ms`` before sending it (0: no delay)."""
        await self._call("POST", "streams/delay", {"ms": ms, "symbol": symbol})

    async def clear_stream_faults(self) -> None:
        await self._call("DELETE", "streams/faults")
