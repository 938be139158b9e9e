"""The trade ledger: realized PnL, dust and inventory in a real database.

``LedgerStore`` (async, both engines) over SQLite by default or PostgreSQL by URL
(``LEDGER_URL``); the schema is the Alembic revisions under ``migrations/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from trader.contracts import TradeRecord
from trader.ledger.store import LedgerAhead, LedgerBehind, LedgerStore, database_url

T = TypeVar("T")

__all__ = [
    "LedgerAhead",
    "LedgerBehind",
    "LedgerStore",
    "database_url",
    "read_ledger",
    "read_trades",
]


def read_ledger(target: str | Path, read: Callable[[LedgerStore], Awaitable[T]]) -> T:
    """Run ``read`` on a store of its own, from synchronous code (a CLI, a test's poll).

    It runs on a private event loop in a thread, so it also works when the caller is
    itself inside a running loop."""

    async def go() -> T:
        store = LedgerStore(target)
        try:
            return await read(store)
        finally:
            await store.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def read_trades(target: str | Path) -> list[TradeRecord]:
    """Every trade, by close time (synchronous; see ``read_ledger``)."""
    return read_ledger(target, lambda store: store.trades())
