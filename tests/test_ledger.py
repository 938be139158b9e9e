"""The ledger is a real SQLite file; inserts are idempotent on the trade id."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal as D

from trader.contracts import DustRecord, TradeRecord
from trader.ledger import LedgerStore


def trade(trade_id: str, net: str = "1.5") -> TradeRecord:
    return TradeRecord(
        trade_id=trade_id,
        symbol="ETH/BTC",
        exchange="paper",
        exit_reason="take_profit",
        bought_amount=D("1.234"),
        sold_amount=D("1.234"),
        entry_price=D("0.052001"),
        entry_cost=D("0.064169234"),
        entry_fee=D("0.000064169234"),
        exit_proceeds=D("0.0655"),
        exit_fee=D("0.0000655"),
        net_pnl=D(net),
        pnl_pct=D("2.01"),
        opened_ts=1.0,
        closed_ts=2.0,
        simulated=True,
    )


def test_trade_recorded_once_and_decimals_exact(tmp_path):
    store = LedgerStore(tmp_path / "ledger.sqlite")
    assert store.record_trade(trade("BTC-USDT:1:1")) is True
    assert store.record_trade(trade("BTC-USDT:1:1", net="999")) is False  # a retry
    [saved] = store.trades()
    assert saved == trade("BTC-USDT:1:1")
    assert saved.entry_fee == D("0.000064169234")


def test_concurrent_retries_and_reopen_count_once(tmp_path):
    path = tmp_path / "ledger.sqlite"
    stores = [LedgerStore(path) for _ in range(4)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: stores[i % 4].record_trade(trade("t1")), range(32)))
    assert results.count(True) == 1
    stores[0].record_trade(trade("t2", net="-0.5"))
    for s in stores:
        s.close()
    reopened = LedgerStore(path)
    assert [t.trade_id for t in reopened.trades()] == ["t1", "t2"]
    assert reopened.total_pnl() == D("1.0")


def test_dust_is_idempotent(tmp_path):
    store = LedgerStore(tmp_path / "l.sqlite")
    dust = DustRecord(
        dust_id="d1",
        symbol="BTC/USDT",
        exchange="paper",
        amount=D("0.00001"),
        price=D("65000"),
        reason="buy dust",
        ts=3.0,
    )
    assert store.record_dust(dust) and not store.record_dust(dust)
    assert store.dust() == [dust]


def test_a_ledger_written_before_the_inventory_columns_is_upgraded_not_dropped(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    columns = [
        c
        for c in TradeRecord.model_fields
        if c
        not in (
            "written_off",
            "carried_amount",
            "carried_cost",
            "inventory_in_amount",
            "inventory_in_cost",
        )
    ]
    old.execute(
        f"CREATE TABLE trades ({', '.join(c + ' TEXT' for c in columns)}, PRIMARY KEY (trade_id))"
    )
    row = trade("BTC-USDT:0:1").model_dump()
    old.execute(
        f"INSERT INTO trades VALUES ({', '.join('?' for _ in columns)})",
        [str(row[c]) if not isinstance(row[c], bool) else int(row[c]) for c in columns],
    )
    old.commit()
    old.close()
    store = LedgerStore(path)
    [kept] = store.trades()
    assert kept.trade_id == "BTC-USDT:0:1" and kept.written_off == 0 and kept.carried_amount == 0
    assert store.record_trade(trade("BTC-USDT:0:2").model_copy(update={"written_off": D("0.1")}))
    assert {t.trade_id: t.written_off for t in store.trades()}["BTC-USDT:0:2"] == D("0.1")


def test_total_pnl_counts_inventory_write_offs_once(tmp_path):
    from trader.contracts import InventoryRecord

    store = LedgerStore(tmp_path / "ledger.sqlite")
    store.record_trade(trade("BTC-USDT:1:1", net="2"))
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
        )
        assert store.record_inventory(record) and not store.record_inventory(record)
    # A position's shortfall is inside its trade's net already; carried is not realized.
    assert store.total_pnl() == D("1.5")
