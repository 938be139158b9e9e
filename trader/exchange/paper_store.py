"""SQLite persistence of the paper exchange: orders, balances and the market origin.

Shared by every process that opens the same file (a killed worker and its replacement see
the same orders). Uniqueness of client order ids is a database constraint, checked inside
one ``BEGIN IMMEDIATE`` transaction, so two processes can never both create the same id.

The UNIQUE column is the order's *storage key*: its client id, so SQLite itself refuses a
second order with it. A venue that takes a final order's client id again (Binance, the
simulator) stores such a repeat under ``<client id>#<order id>`` (``#`` is outside every
exchange's client-id alphabet); files written before repeats existed need no migration.
Lookups by client id read the id inside the order (an expression index) and return the
newest order with it; order ids are the row's ``seq``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from trader.core.market import Order, OrderSide

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS balances (currency TEXT PRIMARY KEY, amount TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    client_order_id TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fills (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_order_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fills_by_order ON fills (client_order_id);
CREATE INDEX IF NOT EXISTS orders_by_client_id ON orders (json_extract(body, '$.client_order_id'));
"""


class PaperFill(BaseModel):
    """One execution of an order against one book level (a Binance "trade")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int = 0
    """Trade id, assigned by the store."""
    order_id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    price: Decimal
    amount: Decimal
    fee: Decimal
    """Commission in ``fee_currency`` (base for buys that pay in the asset received)."""
    fee_currency: str
    ts_ms: int


class PaperStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(_SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic read-modify-write across processes."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def meta_default(self, key: str, default: str) -> str:
        """The stored value, storing ``default`` first if there is none."""
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, default))
            return str(db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    def init_balances(self, balances: dict[str, Decimal]) -> None:
        """Set starting balances once: a file that has any balance keeps its own."""
        with self.transaction() as db:
            if db.execute("SELECT COUNT(*) FROM balances").fetchone()[0] == 0:
                db.executemany(
                    "INSERT INTO balances VALUES (?, ?)", [(k, str(v)) for k, v in balances.items()]
                )

    @staticmethod
    def balance(db: sqlite3.Connection, currency: str) -> Decimal:
        row = db.execute("SELECT amount FROM balances WHERE currency = ?", (currency,)).fetchone()
        return Decimal(row[0]) if row else Decimal(0)

    @staticmethod
    def add_balance(db: sqlite3.Connection, currency: str, delta: Decimal) -> None:
        new = PaperStore.balance(db, currency) + delta
        db.execute(
            "INSERT INTO balances VALUES (?, ?) ON CONFLICT(currency) DO UPDATE "
            "SET amount = excluded.amount",
            (currency, str(new)),
        )

    def balances(self) -> dict[str, Decimal]:
        with self._lock:
            rows = self._conn.execute("SELECT currency, amount FROM balances").fetchall()
        return {c: Decimal(a) for c, a in rows}

    @staticmethod
    def insert_order(db: sqlite3.Connection, order: Order, *, repeat: bool = False) -> bool:
        """Store a new order under its id (from ``next_id``). False when the client order id
        exists already, unless the order is a ``repeat`` of a final one (a venue that takes
        a final order's client id again)."""
        key = f"{order.client_order_id}#{order.id}" if repeat else order.client_order_id
        cur = db.execute(
            "INSERT OR IGNORE INTO orders (seq, client_order_id, symbol, body) VALUES (?, ?, ?, ?)",
            (int(order.id), key, order.symbol, order.model_dump_json()),
        )
        return cur.rowcount == 1

    @staticmethod
    def next_id(db: sqlite3.Connection) -> str:
        row = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM orders").fetchone()
        return str(row[0])

    @staticmethod
    def save_order(db: sqlite3.Connection, order: Order) -> None:
        db.execute(
            "UPDATE orders SET body = ? WHERE seq = ?", (order.model_dump_json(), int(order.id))
        )

    @staticmethod
    def get_order(db: sqlite3.Connection, client_order_id: str) -> Order | None:
        """The newest order with this client id."""
        row = db.execute(
            "SELECT body FROM orders WHERE json_extract(body, '$.client_order_id')"
            " = ? ORDER BY seq DESC LIMIT 1",
            (client_order_id,),
        ).fetchone()
        return Order.model_validate_json(row[0]) if row else None

    def orders_with_client_id(self, client_order_id: str) -> list[Order]:
        """Every order with this client id, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT body FROM orders WHERE json_extract(body, '$.client_order_id') = ? "
                "ORDER BY seq",
                (client_order_id,),
            ).fetchall()
        return [Order.model_validate_json(r[0]) for r in rows]

    @staticmethod
    def get_order_by_id(db: sqlite3.Connection, order_id: str) -> Order | None:
        if not order_id.isdigit():  # ids are the row's seq: anything else names no order
            return None
        row = db.execute("SELECT body FROM orders WHERE seq = ?", (int(order_id),)).fetchone()
        return Order.model_validate_json(row[0]) if row else None

    def order_by_id(self, order_id: str) -> Order | None:
        """The order with this exchange id (without parsing every other one)."""
        with self._lock:
            return self.get_order_by_id(self._conn, order_id)

    def orders(self, symbol: str | None = None) -> list[Order]:
        with self._lock:
            if symbol is None:
                rows = self._conn.execute("SELECT body FROM orders ORDER BY seq").fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT body FROM orders WHERE symbol = ? ORDER BY seq", (symbol,)
                ).fetchall()
        return [Order.model_validate_json(r[0]) for r in rows]

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Orders stored as open, oldest first, without reading the closed ones (the
        Binance simulator re-matches these several times a second)."""
        where = "json_extract(body, '$.status') = 'open'"
        with self._lock:
            if symbol is None:
                rows = self._conn.execute(
                    f"SELECT body FROM orders WHERE {where} ORDER BY seq"
                ).fetchall()
            else:
                rows = self._conn.execute(
                    f"SELECT body FROM orders WHERE symbol = ? AND {where} ORDER BY seq", (symbol,)
                ).fetchall()
        return [Order.model_validate_json(r[0]) for r in rows]

    @staticmethod
    def insert_fill(db: sqlite3.Connection, fill: PaperFill) -> None:
        cur = db.execute(
            "INSERT INTO fills (client_order_id, symbol, body) VALUES (?, ?, '')",
            (fill.client_order_id, fill.symbol),
        )
        fill = fill.model_copy(update={"id": cur.lastrowid})
        db.execute("UPDATE fills SET body = ? WHERE id = ?", (fill.model_dump_json(), fill.id))

    def fills(
        self,
        symbol: str | None = None,
        *,
        client_order_id: str | None = None,
        order_id: str | None = None,
    ) -> list[PaperFill]:
        """Every fill (of one symbol, of one client id, of one order), oldest first."""
        sql, args = "SELECT body FROM fills WHERE 1 = 1", list[str]()
        if symbol is not None:
            sql, args = sql + " AND symbol = ?", [*args, symbol]
        if client_order_id is not None:
            sql, args = sql + " AND client_order_id = ?", [*args, client_order_id]
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY id", args).fetchall()
        fills = [PaperFill.model_validate_json(r[0]) for r in rows]
        return [f for f in fills if order_id is None or f.order_id == order_id]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
