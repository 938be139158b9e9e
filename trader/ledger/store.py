"""The ledger store: trades, dust and inventory rows in SQLite (default) or PostgreSQL.

One async interface for both engines (activities and the legacy engine await it). Inserts
are idempotent on the row's id (``ON CONFLICT DO NOTHING``): a retried or re-run write
records once. The schema is migrated (Alembic) on first use, so constructing a store does
no I/O and a database that is down fails only the writes, which their callers retry.

Readers never take the write lock (several processes read one SQLite file while the
engines write it: ``starter.py status``/``profit``, the Telegram bot): a read checks the
revision with a plain read and reads at the head, finds nothing in a ledger not created yet
(or whose creation is not committed), and raises ``LedgerBehind`` at an older revision
rather than migrating: only writers (and ``open``) migrate, serialised.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import event, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import await_

from trader.contracts import DustRecord, InventoryRecord, TradeRecord
from trader.core.errors import TraderError
from trader.ledger import migrate
from trader.ledger.tables import TABLES, dust, inventory, trades

log = logging.getLogger(__name__)
R = TypeVar("R", bound=BaseModel)
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite connection waits for another's lock (the driver's busy handler), and
how long switching a new file to WAL is retried."""


class LedgerBehind(TraderError):
    """A read found the ledger at an older schema revision than this code's. Readers never
    migrate (that takes the write lock): a worker or the legacy engine does, at its start."""


class LedgerAhead(TraderError):
    """The ledger is at a revision this code does not know: a newer release migrated it
    (a worker of the previous release during a rolling deploy, or after a rollback). This
    code neither reads nor migrates it; its record activities retry, so nothing is lost
    once the newer release runs."""


def database_url(target: str | Path) -> str:
    """The async SQLAlchemy URL of ``target``: a URL (``postgresql://…``, ``sqlite:///…``;
    the async driver is filled in) or a SQLite file path."""
    if isinstance(target, Path) or "://" not in target:
        return f"sqlite+aiosqlite:///{Path(target)}"
    url = make_url(target)
    driver = _ASYNC_DRIVERS.get(url.drivername)
    return url.set(drivername=driver).render_as_string(hide_password=False) if driver else target


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    # SQLAlchemy's documented recipe: let SQLAlchemy, not the driver, begin transactions.
    # Writes and migrations begin IMMEDIATE (the write lock up front, so a migration's
    # check-then-create is serialised); reads plain, and in WAL mode never wait on a writer.
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        _wal(dbapi_connection)

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _wal(dbapi_connection: Any) -> None:
    # On a file already in WAL mode this is a read. Switching a new file to WAL writes its
    # header under an exclusive lock, and two processes creating the ledger together
    # deadlock on it: SQLite answers BUSY at once, without its busy handler (measured: 1
    # connection in 20 of four processes opening a new file together). Retried, with a
    # backoff, for as long as the busy handler would wait.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        finally:
            cursor.close()
        await_(asyncio.sleep(delay))  # on the connection's event loop (greenlet context)
        delay = min(delay * 2, 0.25)


class LedgerStore:
    """The ledger in the database at ``target`` (see ``database_url``)."""

    def __init__(self, target: str | Path) -> None:
        self.url = database_url(target)
        url = make_url(self.url)
        self.dialect = url.get_backend_name()
        if self.dialect == "sqlite" and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        self._engine = create_async_engine(
            self.url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S if self.dialect == "sqlite" else 10},
            pool_pre_ping=True,  # a PostgreSQL restart leaves dead pooled connections
        )
        if self.dialect == "sqlite":
            _sqlite_pragmas(self._engine)
        self._writer = self._engine.execution_options(sqlite_immediate=True)
        self._migrated = False
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Migrate the schema to the newest revision (once; the writes call it)."""
        if self._migrated:
            return
        async with self._lock:
            if not self._migrated:
                revision = (await self._schema())[0]
                self._refuse_ahead(revision)
                if revision != migrate.head():
                    async with self._writer.begin() as conn:  # serialised: BEGIN IMMEDIATE
                        await conn.run_sync(migrate.upgrade)
                self._migrated = True

    async def _schema(self) -> tuple[str | None, bool]:
        # The revision and whether the ledger's tables exist, read without the write lock.
        async with self._engine.connect() as conn:
            return await conn.run_sync(migrate.state)

    async def _readable(self) -> bool:
        """True when the ledger is at the head; False when it has no tables yet (nothing
        recorded: nothing is created); ``LedgerBehind`` at an older revision."""
        if self._migrated:
            return True
        revision, created = await self._schema()
        if revision == migrate.head():
            self._migrated = True
            return True
        if not created:
            return False
        self._refuse_ahead(revision)
        raise LedgerBehind(
            f"the ledger at {make_url(self.url).render_as_string()} is at schema revision "
            f"{revision or 'none (the first store)'}, this code reads {migrate.head()}: "
            "a worker or the legacy engine migrates it when it starts"
        )

    def _refuse_ahead(self, revision: str | None) -> None:
        if not migrate.known(revision):
            raise LedgerAhead(
                f"the ledger at {make_url(self.url).render_as_string()} is at schema revision "
                f"{revision}, newer than this code's {migrate.head()}: a newer release "
                "migrated it; run that release (an older worker of a rolling deploy: replace "
                "it; its record activities retry meanwhile, nothing is lost)"
            )

    async def open_or_warn(self) -> None:
        """``open``, at a worker's start: a database that is down is logged, not raised
        (it only delays the writes, which are retried; it never keeps a worker from trading
        and exiting)."""
        try:
            await self.open()
        except Exception as exc:
            log.warning("ledger not reachable yet (%s): its writes retry until it is", exc)

    async def record_trade(self, trade: TradeRecord) -> bool:
        """Insert the trade once; return False if it was already there."""
        return await self._insert(trade)

    async def record_dust(self, record: DustRecord) -> bool:
        """Insert a dust row once (idempotent on ``dust_id``)."""
        return await self._insert(record)

    async def record_inventory(self, record: InventoryRecord) -> bool:
        """Insert an inventory movement once (idempotent on ``record_id``)."""
        return await self._insert(record)

    async def _insert(self, record: BaseModel) -> bool:
        await self.open()
        table = TABLES[type(record)]  # type: ignore[index]
        insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        stmt = insert(table).values(**record.model_dump()).on_conflict_do_nothing()
        async with self._writer.begin() as conn:
            result = await conn.execute(stmt)
        return result.rowcount == 1

    async def trades(
        self, *, since: float | None = None, symbol: str | None = None
    ) -> list[TradeRecord]:
        """Trades by close time; ``since`` (epoch seconds) and ``symbol`` narrow them."""
        query = select(trades).order_by(trades.c.closed_ts, trades.c.trade_id)
        if since is not None:
            query = query.where(trades.c.closed_ts >= since)
        if symbol is not None:
            query = query.where(trades.c.symbol == symbol)
        return await self._rows(query, TradeRecord)

    async def dust(self) -> list[DustRecord]:
        return await self._rows(select(dust).order_by(dust.c.ts, dust.c.dust_id), DustRecord)

    async def inventory(self) -> list[InventoryRecord]:
        query = select(inventory).order_by(inventory.c.ts, inventory.c.record_id)
        return await self._rows(query, InventoryRecord)

    async def total_pnl(self, *, simulated: bool = False) -> Decimal:
        """Realized net PnL of one kind of row (real by default; ``simulated``: the paper,
        dry-run and shadow rows instead, never the two summed): the trades' plus the
        write-offs of inventory the account no longer held (a loss outside any trade).
        Equals the symbols' ``realized_pnl_total`` of that account."""
        written_off = sum(
            (
                r.cost
                for r in await self.inventory()
                if r.kind == "inventory_write_off" and r.simulated == simulated
            ),
            Decimal(0),
        )
        trades = [t for t in await self.trades() if t.simulated == simulated]
        return sum((t.net_pnl for t in trades), Decimal(0)) - written_off

    async def _rows(self, query: Any, model: type[R]) -> list[R]:
        if not await self._readable():
            return []
        async with self._engine.connect() as conn:
            result = await conn.execute(query)
            return [model(**row) for row in result.mappings()]

    async def close(self) -> None:
        await self._engine.dispose()
