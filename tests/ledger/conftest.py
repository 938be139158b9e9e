"""Every ledger test runs on both databases: a SQLite file and a real PostgreSQL server.

Without PostgreSQL the PostgreSQL cases fail under ``CI=true`` (``.ci/run`` installs it)
and are skipped, saying why, elsewhere.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.ledger.pg import USER, PgServer, pg_bin
from trader.ledger import LedgerStore


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bin_dir = pg_bin()
    if bin_dir is None:
        why = "PostgreSQL not installed (no pg_ctl/initdb on PATH or in /usr/lib/postgresql)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{why}: .ci/run must install it")
        pytest.skip(why)
    server = PgServer(bin_dir)
    server.start()
    yield server
    server.remove()


async def fresh_pg_database(server: PgServer) -> str:
    """The URL of a new, empty database on ``server``."""
    name = f"ledger_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(user=USER, host="127.0.0.1", port=server.port, database="postgres")
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return server.url(name)


@pytest.fixture(params=["sqlite", "postgresql"])
async def ledger_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """A fresh, empty ledger database of each kind."""
    if request.param == "sqlite":
        return tmp_path / "ledger.sqlite"
    server: PgServer = request.getfixturevalue("pg_server")
    return await fresh_pg_database(server)


@pytest.fixture
async def store(ledger_target: str | Path) -> AsyncIterator[LedgerStore]:
    s = LedgerStore(ledger_target)
    yield s
    await s.close()
