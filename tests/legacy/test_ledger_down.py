"""The legacy engine with its ledger down through a whole trade: the trade row is committed
with the state that closes the trade (the store's outbox), the symbol trades on, and once
the database is back the row is written exactly once (also across restarts), its PnL equal
to the state's. Both databases: PostgreSQL stopped (the tests/ledger cluster), and a SQLite
ledger whose file cannot be opened (a directory stands where the file should be)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import pytest

from tests.ledger.conftest import fresh_pg_database, pg_server
from tests.ledger.pg import PgServer
from tests.legacy.test_books import BooksRig, _holding
from tests.legacy.test_engine_start import SOL, _run_until
from trader.contracts import TradeRecord
from trader.core.phases import Phase
from trader.ledger import LedgerStore
from trader.legacy.store import read_state
from trader.observe.metrics import TraderMetrics

__all__ = ["pg_server"]  # the fixture


class Outage:
    """A ledger database that is down until ``restore()``."""

    def __init__(self, target: str | Path, restore: Callable[[], None]) -> None:
        self.target, self.restore = target, restore


@pytest.fixture(params=["sqlite", "postgresql"])
async def outage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Outage]:
    if request.param == "sqlite":
        path = tmp_path / "down" / "ledger.sqlite"
        path.mkdir(parents=True)  # sqlite cannot open a directory: "unable to open"
        yield Outage(path, path.rmdir)
        return
    server: PgServer = request.getfixturevalue("pg_server")
    url = await fresh_pg_database(server)
    server.stop()
    try:
        yield Outage(url, server.start)
    finally:
        if not (server.data / "postmaster.pid").exists():  # the test ended before restore
            server.start()


async def test_a_trade_closed_while_the_ledger_is_down_is_written_once_when_it_is_back(
    tmp_path: Path, outage: Outage
) -> None:
    rig = BooksRig(tmp_path / "data")
    await rig.ledger.close()
    rig.ledger = LedgerStore(outage.target)
    try:
        s = await _holding(rig, Decimal("1"))  # a standing stop-loss: it sells at once
        rig.store.save(s)
        metrics = TraderMetrics("w-legacy", engine="legacy")
        engine = rig.engine([SOL], metrics=metrics)

        def closed() -> bool:
            return engine.runners[SOL].s.totals.trades_closed == 1

        # The symbol is not held up by the ledger: the trade closes, the engine runs on.
        await _run_until(engine, closed, "the exit with the ledger down")
        saved = read_state(rig.store.path).coins[SOL]
        assert saved.phase in (Phase.COOLDOWN, Phase.IDLE) and saved.totals.trades_closed == 1
        [kept] = rig.store.outbox()  # committed with the closing state, not written
        assert isinstance(kept, TradeRecord) and kept.trade_id == s.trade.decision_id
        assert kept.net_pnl == saved.totals.realized_pnl != 0
        errors = [  # the alert's metric, as the activities' (the type depends on the driver)
            sample.value
            for family in metrics.registry.collect()
            for sample in family.samples
            if sample.name == "trader_ledger_errors_total"
            and sample.labels["call"] == "record_trade"
        ]
        assert sum(errors) >= 1, errors

        outage.restore()
        for _ in range(2):  # the next start writes it; a later one never again
            stop = asyncio.Event()
            stop.set()
            await rig.engine([SOL]).run(stop)
        [trade] = await rig.ledger.trades()
        assert trade == kept and rig.store.outbox() == []
        assert await rig.ledger.total_pnl(simulated=True) == saved.totals.realized_pnl
    finally:
        await rig.close()


async def test_a_running_engine_writes_the_kept_row_once_the_ledger_is_back(
    tmp_path: Path,
) -> None:
    """No restart, no further trade: the engine itself retries what its outbox keeps."""
    rig = BooksRig(tmp_path / "data")
    path = tmp_path / "down" / "ledger.sqlite"
    path.mkdir(parents=True)
    await rig.ledger.close()
    rig.ledger = LedgerStore(path)
    try:
        s = await _holding(rig, Decimal("1"))
        rig.store.save(s)
        engine = rig.engine([SOL])
        state: dict[str, bool] = {"restored": False}

        def written() -> bool:
            if not state["restored"] and engine.runners[SOL].s.totals.trades_closed == 1:
                path.rmdir()  # the database is back while the engine runs
                state["restored"] = True
            return state["restored"] and not rig.store.outbox()

        await _run_until(engine, written, "the kept row written")
        [trade] = await rig.ledger.trades()
        assert trade.trade_id == s.trade.decision_id
        assert trade.net_pnl == read_state(rig.store.path).coins[SOL].totals.realized_pnl
    finally:
        await rig.close()
