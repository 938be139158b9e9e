"""The legacy engine's state store: committed before an order is sent, read back after a
crash by another process, and the seed's three dicts derived from it."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from tests.hang_guard import readline_within
from trader.config import load_settings
from trader.contracts import InventoryRecord, TradeRecord
from trader.core.fills import start_order
from trader.core.inventory import trade_pnl
from trader.core.market import OrderSide
from trader.core.phases import Phase, Trigger
from trader.core.rules import ExitReason
from trader.core.state import CoinState
from trader.hub import MarketHub
from trader.ledger import LedgerStore
from trader.legacy.engine import LegacyEngine
from trader.legacy.store import StateStore, engine_running, read_state, read_symbols
from trader.runtime.exchange import build_paper

SYMBOL = "SOL/USDT"


def _holding(symbol: str = SYMBOL) -> CoinState:
    s = CoinState(symbol=symbol, phase=Phase.POSITION, lineage="abc")
    s.trade.decision_id = "SOL-USDT:abc:1"
    s.trade.amount = Decimal("1.25")
    s.trade.entry_price = Decimal("101.5")
    s.trade.entry_ts = 1000.0
    return s


def test_read_state_of_a_missing_or_empty_file(tmp_path: Path) -> None:
    assert read_state(tmp_path / "none.sqlite").coins == {}
    sqlite3.connect(tmp_path / "empty.sqlite").close()
    assert read_state(tmp_path / "empty.sqlite").coins == {}


def test_saved_state_is_read_by_another_process_without_a_close(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = StateStore(path)
    store.save(_holding())
    # No close: the writer could be SIGKILLed now. Another process reads the same figures.
    code = (
        "import sys; from pathlib import Path; from trader.legacy.store import read_state;"
        "h = read_state(Path(sys.argv[1])).held_assets['SOL/USDT'];"
        "print(h.amount, h.entry_price, h.decision_id)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["1.25", "101.5", "SOL-USDT:abc:1"]


def test_the_seed_dicts_follow_the_state(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite")
    buying = CoinState(symbol="BTC/USDT", phase=Phase.PLACE_BUY, lineage="abc")
    start_order(
        buying, client_order_id="dtbuy1", side=OrderSide.BUY, amount=Decimal("0.002"), now=5.0
    )
    exiting = _holding()
    exiting.apply_transition(Trigger.EXIT_CHECK, now=6.0)
    exiting.apply_transition(Trigger.EXIT_TRIGGERED, now=6.0)
    exiting.trade.exit_reason = ExitReason.STOP_LOSS
    start_order(
        exiting, client_order_id="dtsell1", side=OrderSide.SELL, amount=Decimal("1.25"), now=7.0
    )
    idle = CoinState(symbol="ETH/USDT", phase=Phase.IDLE)
    for s in (buying, exiting, idle):
        store.save(s)
    snap = read_state(store.path)
    assert set(snap.coins) == {"BTC/USDT", "ETH/USDT", SYMBOL}
    assert snap.open_buy_orders["BTC/USDT"].client_order_id == "dtbuy1"
    assert set(snap.open_buy_orders) == {"BTC/USDT"}
    assert set(snap.held_assets) == {SYMBOL}
    assert snap.pending_exits[SYMBOL].reason == "stop_loss"
    assert snap.pending_exits[SYMBOL].client_order_id == "dtsell1"
    # Saved again after the sell filled: the exit and the position are gone.
    exiting.trade.sold_amount = exiting.trade.amount
    store.save(exiting)
    snap = read_state(store.path)
    assert snap.held_assets == {} and snap.pending_exits == {}


async def test_the_buy_is_committed_before_it_is_sent(tmp_path: Path) -> None:
    """The paper exchange accepts the buy and then hangs (the answer is lost): while the
    engine waits, the order's client id is already in the committed state, equal to the
    order's at the exchange: a process killed now finds it on restart."""
    settings = load_settings(
        None,
        data_dir=tmp_path,
        watchlist=[SYMBOL],
        fsm_mode="legacy",
        backfill_minutes=0,
        drop_trigger_pct=Decimal("0.15"),
        market_poll_interval_s=0.2,
        paper={"seed": 11, "tick_ms": 250, "volatility_bps": "12", "accept_then_hang_s": 600},
    )
    exchange = build_paper(settings)
    store = StateStore(tmp_path / "state.sqlite")
    ledger = LedgerStore(tmp_path / "ledger.sqlite")
    engine = LegacyEngine(
        params=settings.trader_params(),
        watchlist=[SYMBOL],
        exchange=exchange,
        hub=MarketHub(exchange, poll_interval_s=0.2),
        store=store,
        ledger=ledger,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    try:
        for _ in range(600):
            if exchange.all_orders() or task.done():
                break
            await asyncio.sleep(0.1)
        [order] = exchange.all_orders()
        snap = read_state(store.path)
        assert snap.coins[SYMBOL].phase is Phase.PLACE_BUY
        assert snap.open_buy_orders[SYMBOL].client_order_id == order.client_order_id
        assert snap.open_buy_orders[SYMBOL].amount == order.amount
    finally:
        stop.set()
        await task
        store.close()
        await ledger.close()
        await exchange.close()
    assert not task.cancelled()


@pytest.mark.parametrize("bad", ["{not json", '{"symbol": 5}'])
def test_an_unreadable_row_names_file_and_symbol(tmp_path: Path, bad: str) -> None:
    store = StateStore(tmp_path / "state.sqlite")
    store.save(_holding())
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE legacy_symbols SET state = ?", (bad,))
    with pytest.raises(ValueError, match=r"state\.sqlite: unreadable state of SOL/USDT"):
        read_state(store.path)


def test_an_outbox_from_before_trade_rows_keeps_its_inventory_rows(tmp_path: Path) -> None:
    """A state file whose outbox had no ``kind`` column (inventory rows only) is given one;
    its rows read back as inventory, and trade rows join them, each under its own key."""
    path = tmp_path / "legacy_state.sqlite"
    record = InventoryRecord(
        record_id="SOL-USDT:abc:carried:1",
        symbol=SYMBOL,
        exchange="paper",
        kind="carried",
        amount=Decimal("0.02"),
        cost=Decimal("2.01"),
        price=Decimal("100"),
        reason="below the minimum",
        decision_id="SOL-USDT:abc:1",
        ts=1000.0,
    )
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE legacy_ledger_outbox (record_id TEXT PRIMARY KEY, record TEXT)")
    db.execute(
        "INSERT INTO legacy_ledger_outbox VALUES (?, ?)",
        (record.record_id, record.model_dump_json()),
    )
    db.commit()
    db.close()
    store = StateStore(path)
    try:
        assert store.outbox() == [record]
        s = _holding()
        trade = TradeRecord.closing(
            s,
            trade_pnl(s),
            trade_id="SOL-USDT:abc:1",
            closed_ts=2000.0,
            simulated=True,
            engine="legacy",
        )
        store.save(s, [trade, trade])  # the same row twice: kept once
        assert store.outbox() == [record, trade]
        store.written(record)
        assert store.outbox() == [trade]
    finally:
        store.close()


def test_the_validator_reads_one_exchange_s_rows_each_on_its_own(tmp_path: Path) -> None:
    # A bad row is that symbol's, not the whole file's; another account's rows are not ours.
    store = StateStore(tmp_path / "state.sqlite")
    for symbol in (SYMBOL, "BTC/USDT", "ETH/USDT"):
        store.save(_holding(symbol))
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE legacy_symbols SET exchange = 'binance' WHERE symbol = 'BTC/USDT'")
        db.execute("UPDATE legacy_symbols SET state = '{no' WHERE symbol = 'ETH/USDT'")
    coins, bad = read_symbols(store.path, "paper")
    assert (list(coins), bad) == ([SYMBOL], ["ETH/USDT"])
    assert coins[SYMBOL].remaining == Decimal("1.25")
    assert read_symbols(tmp_path / "none.sqlite", "paper") == ({}, [])
    store.close()


# --- is an engine running on this file? (the hybrid validator's legacy liveness) ----------
def test_a_state_file_says_whether_an_engine_holds_it(tmp_path: Path) -> None:
    """The rows outlive the engine (a stopped shadow's file keeps its last phases): only
    the lock tells whether an engine still runs on them, across processes too."""
    path = tmp_path / "state.sqlite"
    assert engine_running(path) is None  # no engine ever ran here
    store = StateStore(path)
    store.save(_holding())
    assert engine_running(path) is True
    code = (
        "import sys; from pathlib import Path; from trader.legacy.store import engine_running;"
        "print(engine_running(Path(sys.argv[1])))"
    )
    seen = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert seen.stdout.strip() == "True"
    store.close()
    assert engine_running(path) is False
    assert read_state(path).coins[SYMBOL].phase is Phase.POSITION  # the rows are still there


def test_an_engine_killed_outright_is_seen_as_not_running(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    code = (
        "import sys, os; from pathlib import Path; from trader.legacy.store import StateStore;"
        "StateStore(Path(sys.argv[1])); print('open', flush=True); sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert readline_within(proc, 60).strip() == b"open"
        assert engine_running(path) is True
    finally:
        proc.kill()  # SIGKILL: no close, the kernel drops the lock
        proc.wait(timeout=30)
    assert engine_running(path) is False


def test_a_look_at_the_lock_never_keeps_an_engine_from_starting(tmp_path: Path) -> None:
    """The look takes the lock for an instant: an engine starting in that instant waits
    for it rather than failing with StateLocked."""
    path = tmp_path / "state.sqlite"
    StateStore(path).close()
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # a look caught mid-way, held far longer than a look is
    threading.Timer(0.3, os.close, (fd,)).start()
    store = StateStore(path)  # used to raise StateLocked("held by pid ...") at once
    assert engine_running(path) is True
    store.close()
