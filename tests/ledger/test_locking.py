"""The SQLite ledger shared by processes (the worker's or engine's writes, ``starter.py
status``/``profit`` and the Telegram bot reading): another process's write lock, held on
real files by real processes, never fails nor blocks a reader, and a writer waits for it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine

from tests.hang_guard import readline_within
from tests.ledger.test_store import trade
from trader.ledger import LedgerStore, migrate, read_ledger, read_trades

# Holds SQLite's write lock on argv[1] (BEGIN IMMEDIATE, then argv[4:] as statements) until
# a line on stdin, or for argv[3] seconds when that is not 0; then rolls back or commits.
_HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
if sys.argv[2] == "wal":
    db.execute("PRAGMA journal_mode=WAL")
db.execute("BEGIN IMMEDIATE")
for sql in sys.argv[4:]:
    db.execute(sql)
print("held", flush=True)
if float(sys.argv[3]):
    time.sleep(float(sys.argv[3]))
    db.execute("COMMIT")
else:
    sys.stdin.readline()
    db.execute("ROLLBACK")
print("released", flush=True)
"""


@contextmanager
def _write_lock(
    path: Path, *statements: str, wal: bool = True, for_s: float = 0
) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the write lock on ``path`` (until the block ends, or
    ``for_s`` seconds)."""
    argv = [sys.executable, "-c", _HOLDER, str(path), "wal" if wal else "rollback", str(for_s)]
    proc = subprocess.Popen(
        [*argv, *statements], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert readline_within(proc, 60) == "held\n"
        yield proc
        if not for_s:
            proc.stdin.write("\n")
            proc.stdin.flush()
        assert readline_within(proc, 60) == "released\n"  # its lock was never taken from it
    finally:
        proc.kill()
        proc.wait(timeout=30)


def _schema(path: Path) -> tuple[str | None, bool]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return migrate.state(conn)
    finally:
        engine.dispose()


async def test_a_reader_reads_while_another_process_writes(tmp_path: Path) -> None:
    """The writer holds its lock until the reads are done: a read that waited for it (or
    took it) would fail after the busy timeout, and the writer would not release."""
    path = tmp_path / "ledger.sqlite"
    writer = LedgerStore(path)
    await writer.record_trade(trade("t1"))
    await writer.close()
    with _write_lock(path, "DELETE FROM trades"):  # uncommitted: the readers see t1
        assert [t.trade_id for t in read_trades(path)] == ["t1"]
        assert (
            read_ledger(path, lambda store: store.total_pnl(simulated=True)) == trade("t1").net_pnl
        )


async def test_a_reader_of_a_ledger_being_created_finds_it_empty_and_takes_no_lock(
    tmp_path: Path,
) -> None:
    """A process creating the ledger (its migration not committed): a reader finds no
    trades and creates nothing. It used to migrate, waiting for the creator's write lock:
    the legacy books test, polling ``read_trades`` synchronously on the loop on which the
    engine's first write was migrating, failed after 30 s with "database is locked" on
    ``BEGIN IMMEDIATE``."""
    path = tmp_path / "ledger.sqlite"
    with _write_lock(
        path, "CREATE TABLE trades (trade_id TEXT)", "CREATE TABLE alembic_version (v TEXT)"
    ):
        assert read_trades(path) == []
        assert read_ledger(path, lambda store: store.inventory()) == []
    assert _schema(path) == (None, False)  # the creator rolled back; the reader made nothing


async def test_a_writer_waits_for_another_process_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    store = LedgerStore(path)
    await store.open()
    with _write_lock(path, for_s=1):
        assert await store.record_trade(trade("t1"))
    assert [t.trade_id for t in await store.trades()] == ["t1"]
    await store.close()


async def test_a_store_opening_a_new_file_another_is_switching_to_wal_waits(
    tmp_path: Path,
) -> None:
    """Switching a new file to WAL writes its header under an exclusive lock; a second
    process switching it then got "database is locked" at once (SQLite skips its busy
    handler there: measured, 1 connection in 20 of four processes opening a new ledger
    together). The holder keeps a new file's lock as a store creating it does for an
    instant; the store retries until it can, then migrates and writes."""
    path = tmp_path / "ledger.sqlite"
    with _write_lock(path, wal=False, for_s=1):
        store = LedgerStore(path)
        assert await store.record_trade(trade("t1"))
    assert [t.trade_id for t in await store.trades()] == ["t1"]
    assert _schema(path) == (migrate.head(), True)
    await store.close()


_PROCESS = """
import asyncio, sys, time
from tests.ledger.test_store import trade
from trader.ledger import LedgerStore, read_trades

async def main(path, name, at):
    while time.time() < at:  # every process opens the new file at once
        await asyncio.sleep(0.001)
    store = LedgerStore(path)
    for i in range(3):
        assert await store.record_trade(trade(f"{name}-{i}"))
        await asyncio.to_thread(read_trades, path)
    await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


def test_processes_creating_one_ledger_together_all_write_and_read(tmp_path: Path) -> None:
    """Four processes open a new ledger file at the same instant, each writing and reading:
    none fails (the WAL switch and the migration are serialised), every row is there once."""
    path = tmp_path / "ledger.sqlite"
    at = time.time() + 3  # after every process has imported the trader
    root = Path(__file__).parents[2]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PROCESS, str(path), f"p{n}", str(at)],
            cwd=root,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    try:
        errors = [p.communicate(timeout=120)[1] for p in procs]
    finally:  # a hung one killed (no-op for those that ended)
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert len(read_trades(path)) == 12
