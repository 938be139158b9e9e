"""The notifier's sent-log: which (key, chat) messages were sent, in a small SQLite file
under the data dir (``<data_dir>/telegram_sent.sqlite``), shared by every worker and the
legacy engine on that data dir.

A message is *claimed* (``sending``, with the claim's time) in one committed transaction
before the request leaves, marked ``sent`` once Telegram answered, and released again when
the send certainly failed before reaching Telegram, so the next attempt sends it. A claim
found ``sending``:

- younger than an attempt can live (``busy_s``, the attempt's timeout): that attempt may
  still be running its request: **busy**, ask again later;
- older: its process died (or was cancelled) during the request: whether Telegram got it
  cannot be known (the Bot API has no idempotency key), and it is not sent again (**in
  doubt**): a message is never sent twice to a chat; the price is that an attempt killed
  during the request itself (one HTTP round trip) may lose that one message (logged).

Every call runs in a worker thread (``asyncio.to_thread``): the file is synced on commit
(``synchronous=FULL``) and a writer in another process may hold it for up to
``busy_timeout``; neither may stall the event loop the worker's heartbeats, market hub and
order activities share.

Table ``telegram_sent``: key TEXT, chat_id TEXT, state TEXT ('sending' | 'sent'), ts REAL
(epoch seconds of the last change: for a claim, when it was made); primary key (key,
chat_id).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from enum import Enum
from pathlib import Path


class Claim(str, Enum):
    MINE = "mine"
    """Not sent before: send it now."""
    SENT = "sent"
    """Already delivered."""
    BUSY = "busy"
    """Claimed by an attempt that may still be running: ask again once it cannot be."""
    IN_DOUBT = "in_doubt"
    """Claimed by an attempt that never finished (a crash mid-request): not sent again."""


class SentLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS telegram_sent (key TEXT NOT NULL, chat_id TEXT NOT"
            " NULL, state TEXT NOT NULL, ts REAL NOT NULL, PRIMARY KEY (key, chat_id))"
        )

    async def claim(self, key: str, chat_id: str, *, busy_s: float) -> tuple[Claim, float]:
        """Claim (key, chat) for sending; returns the outcome and the claim's age (s)."""
        return await asyncio.to_thread(self._claim, key, chat_id, busy_s)

    async def sent(self, key: str, chat_id: str) -> None:
        await asyncio.to_thread(
            self._write,
            "UPDATE telegram_sent SET state = 'sent', ts = ? WHERE key = ? AND chat_id = ?",
            (time.time(), key, chat_id),
        )

    async def release(self, key: str, chat_id: str) -> None:
        """The send certainly failed before reaching Telegram: the next attempt sends."""
        await asyncio.to_thread(
            self._write,
            "DELETE FROM telegram_sent WHERE key = ? AND chat_id = ? AND state = 'sending'",
            (key, chat_id),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _claim(self, key: str, chat_id: str, busy_s: float) -> tuple[Claim, float]:
        with self._lock:
            now = time.time()
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO telegram_sent VALUES (?, ?, 'sending', ?)",
                (key, chat_id, now),
            ).rowcount
            if inserted:
                return Claim.MINE, 0.0
            state, ts = self._db.execute(
                "SELECT state, ts FROM telegram_sent WHERE key = ? AND chat_id = ?",
                (key, chat_id),
            ).fetchone()
            age = max(0.0, now - ts)
            if state == "sent":
                return Claim.SENT, age
            return (Claim.BUSY if age < busy_s else Claim.IN_DOUBT), age

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        with self._lock:
            self._db.execute(sql, args)
