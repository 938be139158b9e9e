"""Alembic migrations: a ledger file the first (sqlite3) store wrote, at any age, is
upgraded with every row kept; a new database of either kind is created at the head."""

from __future__ import annotations

import shutil
import sqlite3
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.ledger.test_store import trade
from trader.contracts import DustRecord, InventoryRecord, TradeRecord
from trader.ledger import LedgerAhead, LedgerBehind, LedgerStore, migrate

_FLAG = ("modify_type", "simulated")
_REVISION_0003 = (
    "exit_price",
    "decision_id",
    "buy_client_order_id",
    "sell_client_order_ids",
    "engine",
)
FIXTURE = Path(__file__).parents[1] / "fixtures" / "ledger_before_alembic.sqlite"
"""Written by the sqlite3 ``LedgerStore`` of commit 36f6482 (before Alembic)."""


def _revision(path: Path) -> str | None:
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "alembic_version" not in tables:
            return None
        return str(db.execute("SELECT version_num FROM alembic_version").fetchone()[0])


async def _insert(
    conn: AsyncConnection, store: LedgerStore, table: str, values: dict[str, Any]
) -> None:
    """A row written as an older revision's code wrote it (SQLite: money as text)."""
    params = ", ".join(f":{c}" for c in values)
    await conn.execute(
        text(f"INSERT INTO {table} ({', '.join(values)}) VALUES ({params})"),
        {k: v if isinstance(v, bool | float) or v is None else str(v) for k, v in values.items()}
        if store.dialect == "sqlite"
        else values,
    )


async def test_a_ledger_of_the_first_store_is_migrated_with_every_row(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    shutil.copy(FIXTURE, path)
    assert _revision(path) is None
    store = LedgerStore(path)
    with pytest.raises(LedgerBehind, match="revision none .*reads 0004: a worker or the legacy"):
        await store.trades()  # a reader never migrates (the write lock is the writers')
    assert _revision(path) is None
    await store.open()  # what a worker or the legacy engine does at its start
    rows = await store.trades()
    assert _revision(path) == migrate.head()
    assert [t.trade_id for t in rows] == ["ETH-BTC:0:1", "DOGE-BTC:0:1", "BTC-USDT:0:1"]
    doge = rows[1]
    assert doge.entry_price == D("0.00000512") and doge.written_off == D("0.00000001")
    assert not doge.simulated and rows[0].simulated
    assert doge.net_pnl == D("-0.00021018") and rows[2].net_pnl == D("13.36907")
    [dust] = await store.dust()
    assert dust.price == D("0.00005123") and dust.amount == D("0.00000001")
    [carried] = await store.inventory()
    assert carried.decision_id == "DOGE-BTC:0:1" and carried.cost == D("0.00000513")
    assert (await store.total_pnl() + await store.total_pnl(simulated=True)) == D("0.00110494") + D(
        "-0.00021018"
    ) + D("13.36907")
    for row in rows:  # 0003: derived from each row's own figures, the unknown said so
        assert row.exit_price == row.exit_proceeds / row.sold_amount
        assert row.decision_id == row.trade_id and row.engine == "unknown"
        assert row.buy_client_order_id is None and row.sell_client_order_ids == []
    assert not await store.record_trade(rows[0])  # still idempotent on the old rows
    assert await store.record_trade(trade("ETH-BTC:0:2", closed_ts=1764009999.0))
    await store.close()

    again = LedgerStore(path)  # reopening at the head changes nothing
    assert len(await again.trades()) == 4 and _revision(path) == migrate.head()
    await again.close()
    with sqlite3.connect(path) as db:
        indexes = {r[1] for r in db.execute("PRAGMA index_list(trades)")}
    assert {"ix_trades_closed_ts", "ix_trades_symbol"} <= indexes


async def test_a_ledger_older_than_the_inventory_columns_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    added = migrate._FIRST_STORE_ADDED
    columns = [c for c in TradeRecord.model_fields if c not in (*added, *_REVISION_0003)]
    row = trade("BTC-USDT:0:1").model_dump()
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE trades ("
            + ", ".join(
                f"{c} {'REAL' if c.endswith('_ts') else 'INTEGER' if c == 'simulated' else 'TEXT'}"
                for c in columns
            )
            + ", PRIMARY KEY (trade_id))"
        )
        old.execute(
            f"INSERT INTO trades VALUES ({', '.join('?' for _ in columns)})",
            [row[c] if isinstance(row[c], bool | float) else str(row[c]) for c in columns],
        )
    store = LedgerStore(path)
    await store.open()
    [kept] = await store.trades()
    assert kept.trade_id == "BTC-USDT:0:1" and kept.written_off == 0 and kept.carried_amount == 0
    assert kept.entry_price == D("0.00005123")
    assert _revision(path) == migrate.head()
    # That store had no inventory table yet (it came with those columns): it is created,
    # so a write-off is recorded and counted instead of failing for good.
    write_off = InventoryRecord(
        record_id="BTC-USDT:0:w1",
        symbol="BTC/USDT",
        exchange="paper",
        kind="inventory_write_off",
        amount=D("0.00000001"),
        cost=D("0.00005"),
        price=D("5000"),
        reason="short",
        decision_id=None,
        ts=1.0,
    )
    assert await store.record_inventory(write_off)
    assert [r.cost for r in await store.inventory()] == [D("0.00005")]
    assert (await store.total_pnl() + await store.total_pnl(simulated=True)) == kept.net_pnl - D(
        "0.00005"
    )
    await store.close()


async def test_a_ledger_at_0002_keeps_its_rows_and_gains_their_sources(
    ledger_target: str | Path,
) -> None:
    """Revision 0003 on a database of either kind holding rows (one an orphan's, one with
    nothing sold): the sell price is computed exactly from each row, the decision id is
    the trade id but for the orphan, and new rows carry everything."""
    from alembic import command

    old = [
        trade("ETH-BTC:0:1"),
        trade("ETH-BTC:0:orphan3").model_copy(update={"sold_amount": D(0)}),
    ]
    store = LedgerStore(ledger_target)
    async with store._writer.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(migrate._config(c), "0002"))
        for row in old:
            await _insert(conn, store, "trades", row.model_dump(exclude=set(_REVISION_0003)))
    with pytest.raises(LedgerBehind, match="revision 0002, this code reads 0004"):
        await store.trades()
    await store.open()
    first, orphan = await store.trades()
    assert first.exit_price == D("0.0000655") / D("1.23400001")
    assert first.decision_id == first.trade_id
    assert orphan.exit_price == 0 and orphan.decision_id is None and orphan.engine == "unknown"
    assert first.entry_price == D("0.00005123") and first.net_pnl == D("1.5")  # untouched
    new = trade("ETH-BTC:0:2").model_copy(
        update={
            "exit_price": D("0.00005308"),
            "decision_id": "ETH-BTC:0:2",
            "buy_client_order_id": "b-1",
            "sell_client_order_ids": ["s-1", "s-2"],
            "engine": "legacy",
        }
    )
    assert await store.record_trade(new) and not await store.record_trade(new)
    assert [t for t in await store.trades() if t.trade_id == new.trade_id] == [new]
    await store.close()


async def test_a_ledger_at_0003_keeps_its_inventory_and_dust_and_gains_their_engine(
    ledger_target: str | Path,
) -> None:
    """Revision 0004 on a database of either kind: inventory and dust rows written before
    it read as engine ``unknown`` (dust: not simulated, as before it had no flag), every
    other value untouched; new rows keep their engine and flag."""
    from alembic import command

    carried = InventoryRecord(
        record_id="ETH-BTC:ab:carried:1",
        symbol="ETH/BTC",
        exchange="paper",
        kind="carried",
        amount=D("0.00000001"),
        cost=D("0.00005123"),
        price=D("0.00005"),
        reason="below the minimum",
        decision_id="ETH-BTC:ab:1",
        ts=1.0,
        simulated=True,
    )
    dust = DustRecord(
        dust_id="ETH-BTC:ab:1:2",
        symbol="ETH/BTC",
        exchange="paper",
        amount=D("0.00000001"),
        price=D("0.00005123"),
        reason="left after sell",
        ts=2.0,
    )
    store = LedgerStore(ledger_target)
    async with store._writer.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(migrate._config(c), "0003"))
        for table, row in (("inventory", carried), ("dust", dust)):
            newer = {"engine", "simulated"} if table == "dust" else {"engine"}
            await _insert(conn, store, table, row.model_dump(exclude=newer))
    with pytest.raises(LedgerBehind, match="revision 0003, this code reads 0004"):
        await store.inventory()
    await store.open()
    [old_carried] = await store.inventory()
    assert old_carried == carried.model_copy(update={"engine": "unknown"})
    [old_dust] = await store.dust()
    assert old_dust == dust.model_copy(update={"engine": "unknown", "simulated": False})
    new = carried.model_copy(update={"record_id": "ETH-BTC:ab:carried:2", "engine": "legacy"})
    new_dust = dust.model_copy(update={"dust_id": "x:1", "engine": "legacy", "simulated": True})
    assert await store.record_inventory(new) and await store.record_dust(new_dust)
    assert [r for r in await store.inventory() if r.record_id == new.record_id] == [new]
    assert [d for d in await store.dust() if d.dust_id == "x:1"] == [new_dust]
    await store.close()


async def test_a_new_database_is_created_at_the_head(ledger_target: str | Path) -> None:
    store = LedgerStore(ledger_target)
    await store.open()
    async with store._engine.connect() as conn:
        assert await conn.run_sync(migrate.current) == migrate.head()
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {"trades", "dust", "inventory", "alembic_version"} <= tables
    await store.close()


async def test_the_migrated_schema_is_the_tables_declaration(ledger_target: str | Path) -> None:
    """The revisions are frozen copies (a migration never imports the live tables); this
    is what keeps them and ``trader/ledger/tables.py`` the same schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from trader.ledger.tables import metadata

    store = LedgerStore(ledger_target)
    await store.open()
    async with store._engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), metadata)
        )
    await store.close()
    # SQLite: the first store's INTEGER flags against Boolean; both hold 0/1.
    real = [d for d in diff if not (isinstance(d, list) and d[0][:4:3] == _FLAG)]
    assert real == [], diff


async def test_a_ledger_a_newer_release_migrated_is_said_to_be_ahead_not_behind(
    ledger_target: str | Path,
) -> None:
    """A worker of the previous release during a rolling deploy: the ledger is at a revision
    this code does not know. Reads and the migration say so (the message used to call it
    "behind" and the migration failed in Alembic's words); nothing is written."""
    store = LedgerStore(ledger_target)
    await store.record_trade(trade("ETH-BTC:0:1"))
    async with store._writer.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    for reader in (LedgerStore(ledger_target).trades, LedgerStore(ledger_target).open):
        with pytest.raises(LedgerAhead, match=r"revision 0099, newer than this code's 0004"):
            await reader()
    async with store._writer.begin() as conn:
        assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar() == (
            "0099"
        )
