"""Bring a ledger database to the newest schema with Alembic, never dropping a row.

A file the first (sqlite3) store wrote has its tables but no ``alembic_version``: it gets
the columns that store itself added over time (if it is older than them), then runs every
revision like a new database; the first creates only the tables it lacks (a file older
than the ``inventory`` table gets one). Runs inside one transaction
(serialised: ``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL), so workers
starting together migrate once.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, inspect, text

# Columns the first store added to ``trades`` in place over time (TEXT, default '0').
_FIRST_STORE_ADDED = (
    "written_off",
    "carried_amount",
    "carried_cost",
    "inventory_in_amount",
    "inventory_in_cost",
)
_LOCK_KEY = 0x1ED6E7  # PostgreSQL advisory lock: one migrating process at a time


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str | None:
    """The newest revision."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def known(revision: str | None) -> bool:
    """Whether this code has ``revision`` (None, a database not under Alembic yet: yes)."""
    if revision is None:
        return True
    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except CommandError:
        return False


def current(connection: Connection) -> str | None:
    """The database's revision (None: not under Alembic yet)."""
    return MigrationContext.configure(connection).get_current_revision()


def state(connection: Connection) -> tuple[str | None, bool]:
    """The database's revision, and whether it holds a ledger (the ``trades`` table) at all
    (a read: no lock a writer waits on)."""
    return current(connection), inspect(connection).has_table("trades")


def upgrade(connection: Connection) -> None:
    """Migrate the database behind ``connection`` (sync; the store calls it via
    ``run_sync``) to the newest revision."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    tables = set(inspect(connection).get_table_names())
    cfg = _config(connection)
    if "trades" in tables and "alembic_version" not in tables:
        have = {c["name"] for c in inspect(connection).get_columns("trades")}
        for column in _FIRST_STORE_ADDED:
            if column not in have:
                connection.execute(
                    text(f"ALTER TABLE trades ADD COLUMN {column} TEXT NOT NULL DEFAULT '0'")
                )
    command.upgrade(cfg, "head")
