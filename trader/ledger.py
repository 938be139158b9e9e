"""The trade ledger: realized PnL and dust in a real database (SQLite file by default).

Inserts are idempotent on the trade (decision) id: an activity that is retried, or re-run
after a worker crash, records the trade once. A later issue adds PostgreSQL behind the same
``LedgerStore`` surface.
"""

from __future__ import annotations

import sqlite3
import threading
from decimal import Decimal
from pathlib import Path

from trader.contracts import DustRecord, InventoryRecord, TradeRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trades (
    trade_id TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    exchange TEXT NOT NULL,
    exit_reason TEXT NOT NULL,
    bought_amount TEXT NOT NULL,
    sold_amount TEXT NOT NULL,
    entry_price TEXT NOT NULL,
    entry_cost TEXT NOT NULL,
    entry_fee TEXT NOT NULL,
    exit_proceeds TEXT NOT NULL,
    exit_fee TEXT NOT NULL,
    net_pnl TEXT NOT NULL,
    pnl_pct TEXT NOT NULL,
    opened_ts REAL NOT NULL,
    closed_ts REAL NOT NULL,
    simulated INTEGER NOT NULL,
    written_off TEXT NOT NULL DEFAULT '0',
    carried_amount TEXT NOT NULL DEFAULT '0',
    carried_cost TEXT NOT NULL DEFAULT '0',
    inventory_in_amount TEXT NOT NULL DEFAULT '0',
    inventory_in_cost TEXT NOT NULL DEFAULT '0'
);
CREATE TABLE IF NOT EXISTS dust (
    dust_id TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    exchange TEXT NOT NULL,
    amount TEXT NOT NULL,
    price TEXT NOT NULL,
    reason TEXT NOT NULL,
    ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS inventory (
    record_id TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    exchange TEXT NOT NULL,
    kind TEXT NOT NULL,
    amount TEXT NOT NULL,
    cost TEXT NOT NULL,
    price TEXT NOT NULL,
    reason TEXT NOT NULL,
    decision_id TEXT,
    ts REAL NOT NULL,
    simulated INTEGER NOT NULL
);
"""

# Columns added to ``trades`` since the first release: a ledger file written before them is
# upgraded in place (existing rows read as 0), never dropped.
_TRADE_ADDED = (
    "written_off",
    "carried_amount",
    "carried_cost",
    "inventory_in_amount",
    "inventory_in_cost",
)

_TRADE_COLUMNS = tuple(TradeRecord.model_fields)
_DUST_COLUMNS = tuple(DustRecord.model_fields)
_INVENTORY_COLUMNS = tuple(InventoryRecord.model_fields)


def _sql_value(value: object) -> object:
    # Decimals are stored as exact text; SQLite's REAL would round them.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bool):
        return int(value)
    return value


class LedgerStore:
    """A SQLite-backed ledger, safe to share between threads and processes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            path, check_same_thread=False, timeout=30, isolation_level=None
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        self._upgrade()

    def _upgrade(self) -> None:
        with self._lock:
            have = {row[1] for row in self._conn.execute("PRAGMA table_info(trades)")}
            for column in _TRADE_ADDED:
                if column not in have:
                    self._conn.execute(
                        f"ALTER TABLE trades ADD COLUMN {column} TEXT NOT NULL DEFAULT '0'"
                    )

    def record_trade(self, trade: TradeRecord) -> bool:
        """Insert the trade once; return False if it was already there."""
        return self._insert("trades", _TRADE_COLUMNS, trade.model_dump())

    def record_dust(self, dust: DustRecord) -> bool:
        return self._insert("dust", _DUST_COLUMNS, dust.model_dump())

    def record_inventory(self, record: InventoryRecord) -> bool:
        """Insert an inventory movement once (idempotent on ``record_id``)."""
        return self._insert("inventory", _INVENTORY_COLUMNS, record.model_dump())

    def _insert(self, table: str, columns: tuple[str, ...], row: dict[str, object]) -> bool:
        sql = (
            f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})"
        )
        with self._lock:
            cur = self._conn.execute(sql, [_sql_value(row[c]) for c in columns])
        return cur.rowcount == 1

    def trades(self) -> list[TradeRecord]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(_TRADE_COLUMNS)} FROM trades ORDER BY closed_ts"
            ).fetchall()
        return [TradeRecord(**dict(zip(_TRADE_COLUMNS, row, strict=True))) for row in rows]

    def total_pnl(self) -> Decimal:
        """Realized net PnL: the trades' plus the write-offs of inventory the account no
        longer held (a loss outside any trade). Equals the symbols' ``realized_pnl_total``."""
        written_off = sum(
            (r.cost for r in self.inventory() if r.kind == "inventory_write_off"), Decimal(0)
        )
        return sum((t.net_pnl for t in self.trades()), Decimal(0)) - written_off

    def dust(self) -> list[DustRecord]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {', '.join(_DUST_COLUMNS)} FROM dust").fetchall()
        return [DustRecord(**dict(zip(_DUST_COLUMNS, row, strict=True))) for row in rows]

    def inventory(self) -> list[InventoryRecord]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(_INVENTORY_COLUMNS)} FROM inventory ORDER BY ts"
            ).fetchall()
        return [InventoryRecord(**dict(zip(_INVENTORY_COLUMNS, row, strict=True))) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
