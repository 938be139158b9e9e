"""The legacy engine's state in SQLite: written (and committed) before every order is sent.

One table, ``legacy_symbols``, one row per symbol (readable by any process, e.g. the hybrid
validator, through ``read_state``):

=================  ======  ===============================================================
column             type    meaning
=================  ======  ===============================================================
symbol             TEXT    ``BTC/USDT`` (primary key)
exchange           TEXT    exchange id
phase              TEXT    the ``Phase`` value the symbol is in
phase_since        REAL    epoch seconds of its last transition
position           TEXT    base amount held (Decimal as text)
client_order_id    TEXT    the order in flight, or NULL
state              TEXT    the full ``CoinState`` as JSON (the source of truth)
updated_ts         REAL    epoch seconds of the write
=================  ======  ===============================================================

Ledger rows (a closed trade's ``TradeRecord``, ``InventoryRecord`` movements) are committed
with the state that made them, in ``legacy_ledger_outbox`` (record_id TEXT primary key:
the inventory row's id or ``trade:<trade id>``; record TEXT: the row as JSON; kind TEXT:
``inventory`` | ``trade``), then written to the ledger and deleted. What a crash or a down
database left there is retried while the engine runs and at the next start (the ledger is
idempotent on the rows' ids): a row is written once, never lost, and never holds up a symbol.

The seed's ``TradingEngine`` kept its state in three dicts; ``LegacySnapshot`` derives them
from the rows (``held_assets``, ``open_buy_orders``, ``pending_exits``), so they can never
disagree with the ``CoinState`` the pure core reads and writes.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from trader.contracts import InventoryRecord, TradeRecord
from trader.core.errors import TraderError
from trader.core.market import OrderSide
from trader.core.phases import HOLDING_PHASES, Phase
from trader.core.state import CoinState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS legacy_symbols (
    symbol TEXT PRIMARY KEY,
    exchange TEXT NOT NULL,
    phase TEXT NOT NULL,
    phase_since REAL NOT NULL,
    position TEXT NOT NULL,
    client_order_id TEXT,
    state TEXT NOT NULL,
    updated_ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS legacy_ledger_outbox (
    record_id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'inventory'
);
CREATE TABLE IF NOT EXISTS legacy_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Files from before trade rows went through the outbox: their rows are all inventory.
_ADD_KIND = "ALTER TABLE legacy_ledger_outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'inventory'"

LedgerRow = InventoryRecord | TradeRecord
"""A row the engine writes to the ledger through the outbox."""


def _outbox_row(r: LedgerRow) -> tuple[str, str, str]:
    if isinstance(r, TradeRecord):
        return f"trade:{r.trade_id}", r.model_dump_json(), "trade"
    return r.record_id, r.model_dump_json(), "inventory"


def outbox_key(r: LedgerRow) -> str:
    """The row's key in the outbox (what ``StateStore.written`` takes)."""
    return _outbox_row(r)[0]


STATE_FILE = "legacy_state.sqlite"
"""The store's file name under the data dir."""


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True)


class HeldAsset(_Row):
    """A position held (the seed's ``held_assets[symbol]``)."""

    amount: Decimal
    """Base still held by the trade (neither sold nor written off)."""
    entry_price: Decimal
    entry_ts: float
    decision_id: str | None


class OpenBuyOrder(_Row):
    """A buy sent or about to be sent (the seed's ``open_buy_orders[symbol]``)."""

    client_order_id: str
    amount: Decimal
    placed_ts: float


class PendingExit(_Row):
    """An exit decided and not finished (the seed's ``pending_exits[symbol]``)."""

    reason: str
    client_order_id: str | None
    sell_attempt: int


@dataclass(frozen=True)
class LegacySnapshot:
    """Every symbol's persisted state, and the seed's three dicts derived from it."""

    coins: dict[str, CoinState] = field(default_factory=dict)

    @property
    def held_assets(self) -> dict[str, HeldAsset]:
        return {
            sym: HeldAsset(
                amount=s.remaining,
                entry_price=s.trade.entry_price,
                entry_ts=s.trade.entry_ts,
                decision_id=s.trade.decision_id,
            )
            for sym, s in self.coins.items()
            if s.holds_position and (s.phase in HOLDING_PHASES or s.phase is Phase.ERROR)
        }

    @property
    def open_buy_orders(self) -> dict[str, OpenBuyOrder]:
        return {
            sym: OpenBuyOrder(
                client_order_id=s.trade.order.client_order_id,
                amount=s.trade.order.amount,
                placed_ts=s.trade.order.placed_ts,
            )
            for sym, s in self.coins.items()
            if s.trade.order.client_order_id
            and s.trade.order.side is OrderSide.BUY
            and s.phase in (Phase.PLACE_BUY, Phase.WAIT_FILL, Phase.ERROR)
            and s.trade.entry_ts == 0
        }

    @property
    def pending_exits(self) -> dict[str, PendingExit]:
        return {
            sym: PendingExit(
                reason=str(s.trade.exit_reason),
                client_order_id=s.trade.order.client_order_id
                if s.trade.order.side is OrderSide.SELL
                else None,
                sell_attempt=s.trade.sell_attempt,
            )
            for sym, s in self.coins.items()
            if s.trade.exit_reason is not None and s.holds_position
        }


class StateLocked(TraderError):
    """Another engine holds the data dir's state."""


LOOK_WAIT_S = 1.0
"""How long a starting engine waits for the lock before ``StateLocked``: ``engine_running``
(the hybrid validator's look) holds it for an instant, which must not fail a start."""


def lock_path(path: Path) -> Path:
    """The file whose ``flock`` the engine of ``path`` holds for its life."""
    return path.with_name(path.name + ".lock")


def _lock(path: Path) -> int:
    """An exclusive ``flock`` on ``path`` (with this pid written in it), held until the fd
    is closed or the process dies (the kernel drops it, also on SIGKILL)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + LOOK_WAIT_S
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:  # an engine, not a look: it holds on
                    raise
                time.sleep(0.02)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StateLocked(
            f"{path} is held by pid {holder}: another legacy engine runs on this data dir "
            "(one legacy engine per data dir: two would overwrite each other's state). Stop "
            "it, or give this one another DATA_DIR; `starter.py status` reads the state "
            "while it runs"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class StateStore:
    """The engine's own connection: ``save`` commits before it returns (WAL, full sync), so
    a state saved before an order is sent survives a SIGKILL right after the send.

    One writer per file: it holds an exclusive lock on ``<file>.lock`` for its life (a
    second one raises ``StateLocked`` naming the holder's pid); ``read_state`` takes none."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lock_path = lock_path(path)
        self._lock_fd = _lock(self.lock_path)
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            columns = {
                row[1] for row in self._db.execute("PRAGMA table_info(legacy_ledger_outbox)")
            }
            if "kind" not in columns:
                self._db.execute(_ADD_KIND)
        except BaseException:
            os.close(self._lock_fd)
            raise

    def save(self, s: CoinState, outbox: Sequence[LedgerRow] = ()) -> None:
        """Commit ``s``, and with it (one transaction) the ledger rows it made."""
        if outbox:
            self._db.execute("BEGIN IMMEDIATE")
        try:
            self._save(s)
            self._db.executemany(
                "INSERT OR IGNORE INTO legacy_ledger_outbox (record_id, record, kind) "
                "VALUES (?, ?, ?)",
                [_outbox_row(r) for r in outbox],
            )
        except BaseException:
            if outbox:
                self._db.execute("ROLLBACK")
            raise
        if outbox:
            self._db.execute("COMMIT")

    def outbox(self) -> list[LedgerRow]:
        """Ledger rows committed and not yet known to be written, in commit order."""
        rows = self._db.execute("SELECT record, kind FROM legacy_ledger_outbox ORDER BY rowid")
        return [
            TradeRecord.model_validate_json(text)
            if kind == "trade"
            else InventoryRecord.model_validate_json(text)
            for text, kind in rows
        ]

    def written(self, row: LedgerRow) -> None:
        self._db.execute("DELETE FROM legacy_ledger_outbox WHERE record_id = ?", (outbox_key(row),))

    def _save(self, s: CoinState) -> None:
        self._db.execute(
            "INSERT INTO legacy_symbols VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(symbol) "
            "DO UPDATE SET exchange=excluded.exchange, phase=excluded.phase, "
            "phase_since=excluded.phase_since, position=excluded.position, "
            "client_order_id=excluded.client_order_id, state=excluded.state, "
            "updated_ts=excluded.updated_ts",
            (
                s.symbol,
                s.exchange,
                s.phase.value,
                s.phase_since,
                str(s.remaining if s.holds_position else Decimal(0)),
                s.trade.order.client_order_id,
                s.model_dump_json(),
                time.time(),
            ),
        )

    def load(self) -> dict[str, CoinState]:
        return _load(self._db, self.path)

    def set_role(self, role: str) -> None:
        """Which account the rows trade on: ``primary`` (the exchange's) or ``shadow`` (a
        both-mode shadow's simulated one); ``read_role`` reads it to refuse a role swap
        over a held position where the ``simulated`` flag cannot tell (paper)."""
        self._db.execute(
            "INSERT INTO legacy_meta VALUES ('role', ?) ON CONFLICT(key) DO UPDATE "
            "SET value=excluded.value",
            (role,),
        )

    def close(self) -> None:
        self._db.close()
        os.close(self._lock_fd)  # releases the lock


def _load(db: sqlite3.Connection, path: Path) -> dict[str, CoinState]:
    coins = {}
    for symbol, text in db.execute("SELECT symbol, state FROM legacy_symbols ORDER BY symbol"):
        try:
            coins[symbol] = CoinState.model_validate_json(text)
        except ValueError as exc:
            raise ValueError(f"{path}: unreadable state of {symbol}: {exc}") from None
    return coins


def read_symbols(path: Path, exchange: str) -> tuple[dict[str, CoinState], list[str]]:
    """The rows of one exchange, each on its own (read-only, for the hybrid validator):
    the states that parse, and the symbols whose row does not (not the whole file refused)."""
    if not path.exists():
        return {}, []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    coins, bad = {}, []
    try:
        rows = db.execute(
            "SELECT symbol, state FROM legacy_symbols WHERE exchange = ? ORDER BY symbol",
            (exchange,),
        ).fetchall()
    except sqlite3.OperationalError as exc:  # e.g. the table is not created yet
        if "no such table" in str(exc):
            return {}, []
        raise
    finally:
        db.close()
    for symbol, text in rows:
        try:
            coins[symbol] = CoinState.model_validate_json(text)
        except ValueError:
            bad.append(symbol)
    return coins, bad


def engine_running(path: Path) -> bool | None:
    """Whether an engine runs on the state file ``path`` now (it holds the lock), on this
    host; None when none ever did (no lock file). The rows outlive the engine: a stopped or
    killed engine's file still holds its last phases, so only the lock tells.

    A shared lock taken and dropped at once (``LOCK_NB``: never waits): free means nobody
    holds it. An engine starting in that instant waits ``LOOK_WAIT_S`` for it (``_lock``).
    ``flock`` is per open file, so an engine in this very process counts too."""
    try:
        fd = os.open(lock_path(path), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # drops the shared lock, if taken
    return False


def read_role(path: Path) -> str | None:
    """The role the engine last ran in on this file (``StateStore.set_role``); None: never
    recorded (an absent file, or one from before roles were)."""
    if not path.exists():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM legacy_meta WHERE key = 'role'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    finally:
        db.close()
    return str(row[0]) if row else None


def read_state(path: Path) -> LegacySnapshot:
    """The persisted state, read by any process (read-only; an absent file is empty)."""
    if not path.exists():
        return LegacySnapshot()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return LegacySnapshot(coins=_load(db, path))
    except sqlite3.OperationalError as exc:  # e.g. the table is not created yet
        if "no such table" in str(exc):
            return LegacySnapshot()
        raise
    finally:
        db.close()
