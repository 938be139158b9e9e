"""The ledger on a real SQLite file and a real PostgreSQL server: inserts idempotent on
their ids, money exact to the last digit."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

from trader.contracts import DustRecord, InventoryRecord, TradeRecord
from trader.ledger import LedgerStore
from trader.ledger.tables import TABLES


def trade(trade_id: str, net: str = "1.5", *, closed_ts: float = 2.0) -> TradeRecord:
    return TradeRecord(
        trade_id=trade_id,
        symbol="ETH/BTC",
        exchange="paper",
        exit_reason="take_profit",
        bought_amount=D("1.23400001"),
        sold_amount=D("1.23400001"),
        entry_price=D("0.00005123"),  # BTC-quoted: ~5e-05
        entry_cost=D("0.000063217820512"),
        entry_fee=D("0.00000006"),
        exit_proceeds=D("0.0000655"),
        exit_fee=D("1E-8"),
        net_pnl=D(net),
        pnl_pct=D("2.01"),
        opened_ts=1.0,
        closed_ts=closed_ts,
        simulated=True,
        written_off=D("0.00000001"),
    )


def test_the_tables_hold_exactly_the_records_fields() -> None:
    for model, table in TABLES.items():
        assert list(table.c.keys()) == list(model.model_fields)


async def test_trade_recorded_once_and_decimals_exact(store: LedgerStore) -> None:
    assert await store.record_trade(trade("BTC-USDT:1:1")) is True
    assert await store.record_trade(trade("BTC-USDT:1:1", net="999")) is False  # a retry
    [saved] = await store.trades()
    assert saved == trade("BTC-USDT:1:1")
    for field in ("entry_price", "entry_cost", "exit_fee", "written_off"):
        assert str(getattr(saved, field).normalize()) == str(
            getattr(trade("x"), field).normalize()
        ), field


async def test_concurrent_retries_and_reopen_count_once(ledger_target: str | Path) -> None:
    stores = [LedgerStore(ledger_target) for _ in range(4)]
    results = await asyncio.gather(*(stores[i % 4].record_trade(trade("t1")) for i in range(32)))
    assert results.count(True) == 1
    await stores[0].record_trade(trade("t2", net="-0.5", closed_ts=3.0))
    for s in stores:
        await s.close()
    reopened = LedgerStore(ledger_target)
    assert [t.trade_id for t in await reopened.trades()] == ["t1", "t2"]
    assert await reopened.total_pnl(simulated=True) == D("1.0")
    assert [t.trade_id for t in await reopened.trades(since=2.5)] == ["t2"]
    assert await reopened.trades(symbol="BTC/USDT") == []
    await reopened.close()


async def test_dust_is_idempotent(store: LedgerStore) -> None:
    dust = DustRecord(
        dust_id="d1",
        symbol="BTC/USDT",
        exchange="paper",
        amount=D("0.00000001"),
        price=D("65000.01"),
        reason="buy dust",
        ts=3.0,
    )
    assert await store.record_dust(dust) and not await store.record_dust(dust)
    assert await store.dust() == [dust]


async def test_total_pnl_counts_inventory_write_offs_once(store: LedgerStore) -> None:
    await store.record_trade(trade("BTC-USDT:1:1", net="2"))
    for kind, cost in (("carried", "5"), ("shortfall", "1"), ("inventory_write_off", "0.5")):
        record = InventoryRecord(
            record_id=f"r-{kind}",
            symbol="BTC/USDT",
            exchange="paper",
            kind=kind,
            amount=D("0.01"),
            cost=D(cost),
            price=D("100"),
            reason="test",
            decision_id=None,
            ts=1.0,
            simulated=True,  # of the trade's (paper) account
        )
        assert await store.record_inventory(record)
        assert not await store.record_inventory(record)
    # A position's shortfall is inside its trade's net already; carried is not realized.
    assert await store.total_pnl(simulated=True) == D("1.5")
    assert await store.total_pnl() == 0  # no real row
    assert [r.kind for r in await store.inventory()] == [
        "carried",
        "inventory_write_off",
        "shortfall",
    ]
