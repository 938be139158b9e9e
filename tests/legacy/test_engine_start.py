"""What the legacy engine does with the state it finds at start: one process per data dir,
symbols dropped from the watchlist still managed (exit only), state of another exchange
refused, and orders resumed after a crash as they were planned (or not at all)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.hang_guard import readline_within
from trader.config import load_settings
from trader.core.errors import TraderError
from trader.core.fills import start_order
from trader.core.market import Order, OrderRequest, OrderSide, OrderType
from trader.core.phases import Phase, Trigger
from trader.core.state import CoinState
from trader.exchange.paper import PaperExchange
from trader.hub import MarketHub
from trader.ledger import LedgerStore
from trader.legacy.engine import LegacyEngine, Send
from trader.legacy.store import StateStore, read_state, state_path
from trader.observe.metrics import TraderMetrics
from trader.runtime.exchange import build_paper

SOL, BTC = "SOL/USDT", "BTC/USDT"


def _held(symbol: str = SOL, exchange: str = "paper") -> CoinState:
    s = CoinState(symbol=symbol, exchange=exchange, phase=Phase.POSITION, lineage="abc")
    s.trade.decision_id = f"{symbol}:abc:1"
    s.trade.amount = Decimal("1.25")
    s.trade.entry_price = Decimal("101.5")
    s.trade.entry_ts = 1000.0
    return s


async def _market_buy(ex: PaperExchange, amount: Decimal, coid: str) -> Order:
    """What the account holds before the engine starts (bought outside it)."""
    request = OrderRequest(
        symbol=SOL, side=OrderSide.BUY, type=OrderType.MARKET, amount=amount, client_order_id=coid
    )
    return await ex.create_order(request)


class Rig:
    """A data dir with the paper exchange, its store, and engines built on them."""

    def __init__(self, tmp: Path, **overrides: Any) -> None:
        self.settings = load_settings(
            None,
            data_dir=tmp,
            fsm_mode="legacy",
            backfill_minutes=0,
            max_trades=1,
            market_poll_interval_s=0.2,
            drop_trigger_pct=Decimal("40"),  # no entry of its own during a test
            fsm_backoff_base_seconds=0.1,
            paper={"seed": 11, "tick_ms": 250, "volatility_bps": "12"},
            **overrides,
        )
        self.exchange: PaperExchange = build_paper(self.settings)
        self.store = StateStore(state_path(tmp))
        self.ledger = LedgerStore(tmp / "ledger.sqlite")
        self.engines: list[LegacyEngine] = []
        self.notify: Send | None = None
        """The notifier engines get unless told otherwise (None: log-only)."""

    def engine(
        self,
        watchlist: list[str],
        notify: Send | None = None,
        *,
        metrics: TraderMetrics | None = None,
    ) -> LegacyEngine:
        engine = LegacyEngine(
            params=self.settings.trader_params(),
            watchlist=watchlist,
            exchange=self.exchange,
            hub=MarketHub(self.exchange, poll_interval_s=0.2),
            store=self.store,
            ledger=self.ledger,
            notify=notify or self.notify,
            metrics=metrics,
        )
        self.engines.append(engine)
        return engine

    async def books(self) -> LedgerStore:
        """The ledger once the engines wrote what their outbox holds (in the background)."""
        for engine in self.engines:
            await engine.flush_ledger()
        return self.ledger

    async def close(self) -> None:
        self.store.close()
        await self.ledger.close()
        await self.exchange.close()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tmp_path)
    yield r
    await r.close()


async def _run_until(
    engine: LegacyEngine, done: Any, what: str, timeout: float = 120, in_thread: bool = False
) -> None:
    """Run the engine until ``done()`` (the timeout only guards against a hang).

    ``in_thread``: for a poll that reads the ledger through a connection of its own
    (read_ledger blocks its caller). On this loop it would stop the engine, which may hold
    the ledger's write lock until it runs again: the reader then waits out SQLite's 30 s
    for a lock that cannot be released ("database is locked", CI under load). Not the
    default: a poll that uses the engine's own objects (its state store's connection is
    bound to this thread) must run here, between the engine's steps.
    """
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    try:
        deadline = time.monotonic() + timeout
        while not (await asyncio.to_thread(done) if in_thread else done()):
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task


# --- one process per data dir ---------------------------------------------------------------
def test_a_second_store_on_one_data_dir_is_refused(rig: Rig, tmp_path: Path) -> None:
    lock = tmp_path / "legacy_state.sqlite.lock"
    with pytest.raises(TraderError, match=rf"{lock}.*held by pid \d+") as err:
        StateStore(state_path(tmp_path))
    assert "one legacy engine per data dir" in str(err.value)


def test_another_process_holding_the_data_dir_is_named(tmp_path: Path) -> None:
    """A second engine process is refused, naming the holder's pid; the status (read-only)
    still reads the state while the holder runs; the lock goes with the holder."""
    path = state_path(tmp_path)
    code = (
        "import sys; from pathlib import Path; from trader.legacy.store import StateStore;"
        "from tests.legacy.test_engine_start import _held;"
        "s = StateStore(Path(sys.argv[1])); s.save(_held()); print('ready', flush=True);"
        "sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert readline_within(holder, 60) == "ready\n"
        with pytest.raises(TraderError, match=rf"held by pid {holder.pid}\b"):
            StateStore(path)
        assert read_state(path).held_assets[SOL].amount == Decimal("1.25")
    finally:
        holder.kill()  # as SIGKILL: the kernel drops the lock with the process
        holder.wait(timeout=30)
    StateStore(path).close()


# --- a symbol dropped from the watchlist ----------------------------------------------------
def test_a_dropped_symbol_holding_a_position_keeps_its_runner_and_slot(rig: Rig) -> None:
    rig.store.save(_held(SOL))
    rig.store.save(CoinState(symbol="XRP/USDT", phase=Phase.IDLE))  # holds nothing
    engine = rig.engine([BTC])
    assert set(engine.runners) == {BTC, SOL}
    assert engine.runners[SOL].exit_only and not engine.runners[BTC].exit_only
    assert engine.slots_in_use() == 1 and engine.slots_free() == 0
    assert "exit only" in read_state(rig.store.path).coins[SOL].note


async def test_a_dropped_symbol_is_sold_and_never_bought_again(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_position_hold_minutes=Decimal("0.001"), cooldown_minutes=0)
    try:
        ex = rig.exchange
        bought = await _market_buy(ex, Decimal("0.5"), "seed-1")
        s = _held(SOL)
        s.market = (await ex.load_markets())[SOL]
        s.simulated = True
        s.trade.amount = bought.filled - bought.fee_base
        s.trade.entry_price = bought.average or Decimal(0)
        s.trade.entry_cost = s.trade.amount * s.trade.entry_price
        s.trade.entry_ts = time.time()
        rig.store.save(s)
        engine = rig.engine([BTC])
        runner = engine.runners[SOL]
        await _run_until(engine, lambda: runner.done, "the dropped symbol's exit")
        [trade] = await (await rig.books()).trades()
        assert trade.trade_id == s.trade.decision_id and trade.sold_amount > 0
        sol_buys = [o for o in ex.all_orders() if o.symbol == SOL and o.side is OrderSide.BUY]
        assert [o.client_order_id for o in sol_buys] == ["seed-1"]
        saved = read_state(rig.store.path).coins[SOL]
        assert saved.trade.decision_id is None and not saved.holds_position
        assert saved.phase in (Phase.COOLDOWN, Phase.IDLE)
    finally:
        await rig.close()


# --- the state of another exchange ----------------------------------------------------------
def test_state_of_another_exchange_is_refused(rig: Rig) -> None:
    rig.store.save(_held(SOL, exchange="binance"))
    rig.store.save(CoinState(symbol=BTC, exchange="binance", phase=Phase.IDLE))
    with pytest.raises(TraderError, match=r"SOL/USDT on binance: position 1\.25") as err:
        rig.engine([SOL])
    assert f"{BTC} on binance: nothing held" in str(err.value)
    assert str(rig.store.path) in str(err.value) and "paper (simulated)" in str(err.value)
    assert read_state(rig.store.path).coins[SOL].exchange == "binance"  # kept, readable


async def test_live_state_on_a_simulated_run_is_refused(rig: Rig) -> None:
    """Same exchange id, other kind of account (e.g. GLOBAL_TRADING switched): refused."""
    s = _held(SOL)
    s.market = (await rig.exchange.load_markets())[SOL]
    rig.store.save(s)  # simulated=False: saved by a live run
    with pytest.raises(TraderError, match=r"SOL/USDT on paper \(live\): position 1\.25"):
        rig.engine([SOL])


# --- orders resumed after a crash -----------------------------------------------------------
async def _resumed(
    rig: Rig, phase: Phase, side: OrderSide, amount: Decimal, ago: float
) -> CoinState:
    s = CoinState(symbol=SOL, phase=phase, lineage="abc", simulated=True)
    s.market = (await rig.exchange.load_markets())[SOL]
    s.entry_watch.anchor = Decimal("100")
    s.trade.decision_id = f"{SOL}:abc:1"
    s.order_seq = 1
    start_order(s, client_order_id="dt-lost-1", side=side, amount=amount, now=time.time() - ago)
    return s


async def test_a_buy_resumed_hours_later_that_never_reached_the_exchange_is_dropped(
    rig: Rig,
) -> None:
    """Killed after the pre-send commit, before the request left; restarted an hour later:
    the buy is not sent on an hour-old decision; back to IDLE, a fresh drop needed."""
    s = await _resumed(rig, Phase.PLACE_BUY, OrderSide.BUY, Decimal("0.1"), ago=3600)
    rig.store.save(s)
    engine = rig.engine([SOL])
    runner = engine.runners[SOL]
    await _run_until(
        engine, lambda: runner.s.phase is Phase.IDLE or rig.exchange.all_orders(), "the resumed buy"
    )
    assert rig.exchange.all_orders() == []
    assert runner.s.phase is Phase.IDLE and runner.s.trade.decision_id is None
    assert [r.trigger for r in runner.s.phase_history][-2:] == [
        Trigger.FAILED,
        Trigger.RECOVERED_FLAT,
    ]
    assert runner.s.entry_watch.anchor != Decimal("100")  # a fresh drop from today's price


async def test_a_fresh_resumed_buy_is_still_sent(rig: Rig) -> None:
    """Within the window the same buy is sent (once the window passed): the guard above
    is for stale decisions only."""
    s = await _resumed(rig, Phase.PLACE_BUY, OrderSide.BUY, Decimal("0.1"), ago=0)
    rig.store.save(s)
    engine = rig.engine([SOL])
    await _run_until(engine, lambda: rig.exchange.all_orders(), "the resumed buy")
    assert [o.client_order_id for o in rig.exchange.all_orders()] == ["dt-lost-1"]


async def test_a_resumed_market_sell_is_resent_as_a_market_order(rig: Rig) -> None:
    """The lost plan was the 95 % finish, a market order: the resend is that order, not
    the limit of ``ladder[sell_attempt]``."""
    ex = rig.exchange
    bought = await _market_buy(ex, Decimal("1"), "b-1")
    s = await _resumed(rig, Phase.PLACE_SELL, OrderSide.SELL, Decimal("0.04"), ago=0)
    s.trade.amount = bought.filled - bought.fee_base
    s.trade.sold_amount = s.trade.amount - Decimal("0.04")
    s.trade.entry_price = bought.average or Decimal(0)
    s.trade.entry_ts = time.time()
    s.trade.sell_attempt = 1
    s.trade.order.type = OrderType.MARKET
    s.trade.order.limit_offset_bps = None
    assert rig.settings.trader_params().sell_ladder_bps[1] is not None  # the ladder: a limit
    rig.store.save(s)
    engine = rig.engine([SOL])
    await _run_until(
        engine, lambda: any(o.side is OrderSide.SELL for o in ex.all_orders()), "the sell"
    )
    [sell] = [o for o in ex.all_orders() if o.side is OrderSide.SELL]
    assert sell.client_order_id == "dt-lost-1" and sell.type is OrderType.MARKET
