"""The ledger is a real SQLite file; inserts are idempotent on the trade id."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal as D

from trader.contracts import DustRecord, TradeRecord
from trader.ledger import LedgerStore


def trade(trade_id: str, net: str = "1.5") -> TradeRecord:
    return TradeRecord(
        trade_id=trade_id, symbol="ETH/BTC", exchange="paper", exit_reason="take_profit",
        bought_amount=D("1.234"), sold_amount=D("1.234"), entry_price=D("0.052001"),
        entry_cost=D("0.064169234"), entry_fee=D("0.000064169234"),
        exit_proceeds=D("0.0655"), exit_fee=D("0.0000655"), net_pnl=D(net),
        pnl_pct=D("2.01"), opened_ts=1.0, closed_ts=2.0, simulated=True,
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
    dust = DustRecord(dust_id="d1", symbol="BTC/USDT", exchange="paper", amount=D("0.00001"),
                      price=D("65000"), reason="buy dust", ts=3.0)
    assert store.record_dust(dust) and not store.record_dust(dust)
    assert store.dust() == [dust]
