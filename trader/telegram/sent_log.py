"""The notifier's sent-log: which (key, chat) messages were sent, in a small SQLite file
under the data dir (``<data_dir>/telegram_sent.sqlite``), shared by every worker and the
legacy engine on that data dir.

A message is *claimed* (``sending``) in one committed transaction before the request leaves,
marked ``sent`` once Telegram answered, and released again when the send failed in this
process, so the next attempt sends it. A claim left ``sending`` means its process died during
the request: whether Telegram got it cannot be known (the Bot API has no idempotency key), and
it is not sent again: a message is never sent twice; the price is that a worker killed during
the request itself (one HTTP round trip) may lose that one message (logged as in doubt).

Table ``telegram_sent``: key TEXT, chat_id TEXT, state TEXT ('sending' | 'sent'), ts REAL
(epoch seconds of the last change); primary key (key, chat_id).
"""

from __future__ import annotations

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

    def claim(self, key: str, chat_id: str) -> Claim:
        with self._lock:
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO telegram_sent VALUES (?, ?, 'sending', ?)",
                (key, chat_id, time.time()),
            ).rowcount
            if inserted:
                return Claim.MINE
            (state,) = self._db.execute(
                "SELECT state FROM telegram_sent WHERE key = ? AND chat_id = ?", (key, chat_id)
            ).fetchone()
            return Claim.SENT if state == "sent" else Claim.IN_DOUBT

    def sent(self, key: str, chat_id: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE telegram_sent SET state = 'sent', ts = ? WHERE key = ? AND chat_id = ?",
                (time.time(), key, chat_id),
            )

    def release(self, key: str, chat_id: str) -> None:
        """The send failed here (Telegram said no, or never answered): the next attempt sends."""
        with self._lock:
            self._db.execute(
                "DELETE FROM telegram_sent WHERE key = ? AND chat_id = ? AND state = 'sending'",
                (key, chat_id),
            )

    def close(self) -> None:
        self._db.close()
