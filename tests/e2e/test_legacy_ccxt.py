"""The legacy engine (FSM_MODE=legacy, no Temporal) on the real ccxt path: ``starter.py``
trades through ccxt against the local Binance server, both real processes. One order at the
server per decision across a SIGKILL while holding; a balance that shrank while the engine
was down is written off (a ledger row) and the rest sold once; a lost create answer looked
up through an order query that lags finds the buy instead of sending a second one."""

from __future__ import annotations

import asyncio
import json
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import SIM_KEYS, binance_config, kill, spawn, start_sim, wait_until
from tests.e2e.helpers import write_config as _write_config
from tests.e2e.test_legacy import _decided_in_log
from trader.binance_sim.control import SimControl
from trader.contracts import InventoryRecord, TradeRecord
from trader.core.phases import Phase
from trader.core.sizing import round_down
from trader.core.state import CoinState
from trader.ledger import read_ledger, read_trades
from trader.legacy.store import HeldAsset, read_state, state_path

pytestmark = pytest.mark.e2e

SYMBOL = "SOL/USDT"
CREATE = "POST /api/v3/order"
ENV = {**SIM_KEYS, "FSM_MODE": "legacy"}


def _config(tmp: Path, url: str, **settings: str) -> Path:
    return _write_config(
        tmp / "cfg.toml",
        address="127.0.0.1:1",  # never used: no Temporal in legacy mode
        data_dir=tmp / "data",
        queue="q",
        watchlist=(SYMBOL,),
        extra=binance_config(url),
        max_position_hold_minutes='"0"',  # exits by price only: the test sets it
        cooldown_minutes='"0.02"',
        stop_loss_pct='"5"',
        **settings,
    )


class Engine:
    """The engine's processes on one data dir, and what they left there."""

    def __init__(self, tmp: Path, url: str, **settings: str) -> None:
        self.cfg, self.data = _config(tmp, url, **settings), tmp / "data"
        self.log = tmp / "engine.log"
        self.ledger = self.data / "ledger.sqlite"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.procs.append(spawn("starter.py", "--config", str(self.cfg), env=ENV, log=self.log))

    def kill(self) -> None:
        for p in self.procs:
            kill(p)

    def coin(self) -> CoinState | None:
        return read_state(state_path(self.data)).coins.get(SYMBOL)

    def wait_anchored_idle(self) -> None:
        """IDLE with an anchor saved: a drop set now is a drop from it."""
        wait_until(
            lambda: (s := self.coin()) and s.phase is Phase.IDLE and s.entry_watch.anchor > 0,
            timeout=120,
            what=f"IDLE with an anchor ({self.log.read_text()[-800:]})",
        )

    def wait_held(self, *, not_decision: str | None = None) -> HeldAsset:
        held: HeldAsset = wait_until(
            lambda: (
                (h := read_state(state_path(self.data)).held_assets.get(SYMBOL))
                and h.decision_id != not_decision
                and h
            ),
            timeout=120,
            what=f"a position ({self.log.read_text()[-800:]})",
        )
        return held

    def wait_trades(self, n: int) -> list[TradeRecord]:
        trades: list[TradeRecord] = wait_until(
            lambda: self.ledger.exists() and len(t := read_trades(self.ledger)) >= n and t,
            timeout=120,
            what=f"{n} trade(s) in the ledger ({self.log.read_text()[-800:]})",
        )
        return trades

    def decided(self) -> list[tuple[str, str, str]]:
        """(client id, side, decision id) of every order placed, from the phase log."""
        return [
            (d.client_order_id, d.side, d.decision_id)
            for d in _decided_in_log(self.data)
            if d.trigger == "order_placed"
        ]

    def events(self) -> list[dict[str, Any]]:
        return [
            json.loads(line)
            for file in sorted((self.data / "logs").glob("*.jsonl"))
            for line in file.read_text().splitlines()
        ]


async def _orders(sim: SimControl) -> list[dict[str, Any]]:
    return await sim.orders()


def _assert_one_order_per_decision(orders: list[dict[str, Any]], decided: list[Any]) -> None:
    accepted = [o["client_order_id"] for o in orders]
    assert len(accepted) == len(set(accepted)), accepted  # no client id sent twice
    assert sorted(accepted) == sorted(c for c, _, _ in decided)  # each decision, once
    assert len({c for c, _, _ in decided}) == len(decided)


def _sold(orders: list[dict[str, Any]], decided: list[Any], decision: str) -> Decimal:
    sells = {c for c, side, d in decided if side == "sell" and d == decision}
    return sum((Decimal(o["filled"]) for o in orders if o["client_order_id"] in sells), Decimal(0))


def _print_timing(
    engine: Engine, orders: list[dict[str, Any]], prices: list[dict[str, Any]]
) -> None:
    """Per trade: the entry signal to the ledger row (phase log, the engine's clock), and
    each order's arrival after the price that triggered it (the server's clock)."""
    events = engine.events()
    for e in (e for e in events if e["trigger"] == "recorded"):
        signal = next(x for x in events if x["trigger"] == "signal" and x["decision_id"] ==
                      e["trade_id"])  # fmt: skip
        print(f"trade {e['trade_id']}: signal -> ledger row {e['ts'] - signal['ts']:.2f}s")
    for o in orders:
        before = [p for p in prices if p["ts_us"] <= (o["arrived_us"] or 0)]
        if before and o["arrived_us"]:
            lag = (o["arrived_us"] - before[-1]["ts_us"]) / 1e6
            print(f"{o['side']} {o['client_order_id']}: price -> order at server {lag:.3f}s")


def _sim(tmp: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    return start_sim(tmp, "--static", f"{SYMBOL}=150", "--balance", "USDT=10000", *args)


LOST = {"endpoint": CREATE, "kind": "accept_then_drop", "count": 1}


async def _buy_with_lost_answer(
    engine: Engine, sim: SimControl, faults: tuple[dict[str, Any], ...] = (LOST,)
) -> HeldAsset:
    """The engine started, and its first buy accepted by the server whose answer is lost
    (after ``faults`` before it, in order)."""
    engine.start()
    engine.wait_anchored_idle()
    for rule in faults:  # armed in order: the first with shots left fires
        await sim.add_fault(rule)
    await sim.set_price(SYMBOL, "149")
    held = engine.wait_held()
    assert [CREATE, "accept_then_drop"] in (await sim.faults())["fired"]
    return held


async def test_a_full_round_then_sigkill_while_holding_sells_once(tmp_path: Path) -> None:
    sim_proc, url = _sim(tmp_path)
    engine = Engine(tmp_path, url)
    async with SimControl(url) as sim:
        try:
            engine.start()
            engine.wait_anchored_idle()
            # 1. A full round: drop -> buy -> take profit -> ledger row.
            await sim.set_price(SYMBOL, "149")  # 0.67 % below the anchor: buys
            first = engine.wait_held()
            await sim.set_price(SYMBOL, "151")  # above take profit (0.15 %): sells
            [trade] = engine.wait_trades(1)
            assert trade.trade_id == first.decision_id and trade.exit_reason == "take_profit"
            orders = await _orders(sim)
            assert [o["side"] for o in orders] == ["buy", "sell"]
            _assert_one_order_per_decision(orders, engine.decided())
            assert trade.sold_amount == Decimal(orders[1]["filled"])
            buy = orders[0]  # Binance withholds the buy's fee in base
            assert trade.bought_amount == Decimal(buy["filled"]) - Decimal(buy["fee_base"])
            assert not trade.simulated
            # 2. The next position, SIGKILLed while held, then a new engine.
            engine.wait_anchored_idle()
            await sim.set_price(SYMBOL, "149")
            second = engine.wait_held(not_decision=first.decision_id)
            engine.kill()
            assert read_state(state_path(engine.data)).held_assets[SYMBOL] == second
            engine.start()
            wait_until(
                lambda: (s := engine.coin()) and "reconcile (resumed after a stop)" in s.note,
                timeout=60,
                what="the restart's account check",
            )
            assert len(await _orders(sim)) == 3  # the restart sent nothing
            await sim.set_price(SYMBOL, "151")
            trades = engine.wait_trades(2)
            await asyncio.sleep(2)  # time for a doubled sell to show, if there were one
            orders, prices = await _orders(sim), await sim.price_events()
        finally:
            engine.kill()
            kill(sim_proc)
    decided = engine.decided()
    print(f"\nlegacy on ccxt: orders at the server {len(orders)}, decisions {len(decided)}")
    _print_timing(engine, orders, prices)
    assert [o["side"] for o in orders] == ["buy", "sell", "buy", "sell"]
    _assert_one_order_per_decision(orders, decided)
    assert second.decision_id is not None
    by_id = {t.trade_id: t for t in trades}
    assert set(by_id) == {first.decision_id, second.decision_id}  # each recorded once
    again = by_id[second.decision_id]
    assert again.bought_amount == second.amount
    assert again.sold_amount == _sold(orders, decided, second.decision_id) > 0
    saved = engine.coin()
    assert saved is not None and saved.totals.trades_closed == 2
    assert SYMBOL not in read_state(state_path(engine.data)).held_assets


async def test_a_lagging_order_query_and_a_shrunken_balance(tmp_path: Path) -> None:
    """The buy's answer is lost and the order query misses fresh orders for 2.5 s (the
    consistency window is 3 s): the retry finds the buy, no second one. Killed while holding,
    10 % of the coins leave the account; the restart writes that part off (a ``shortfall``
    row) and the rest is sold, once."""
    sim_proc, url = _sim(tmp_path, "--lookup-lag", "2.5")
    engine = Engine(tmp_path, url)
    async with SimControl(url) as sim:
        try:
            held = await _buy_with_lost_answer(engine, sim)
            [buy] = await _orders(sim)
            assert held.amount == Decimal(buy["filled"]) - Decimal(buy["fee_base"])
            engine.kill()
            coin = engine.coin()
            market = coin.market if coin else None
            assert market is not None
            left = round_down(held.amount * Decimal("0.9"), market.amount_step)
            await sim.set_balances({"SOL": left})  # sold by hand while nothing watched
            engine.start()
            wait_until(
                lambda: (s := engine.coin()) and "written off" in s.note,
                timeout=60,
                what=f"the restart's write-off ({engine.log.read_text()[-800:]})",
            )
            await sim.set_price(SYMBOL, "151")
            [trade] = engine.wait_trades(1)
            await asyncio.sleep(2)  # time for a doubled sell to show, if there were one
            orders = await _orders(sim)
            balances = await sim.balances()
        finally:
            engine.kill()
            kill(sim_proc)
    decided = engine.decided()
    print(f"\nlegacy on ccxt (lag, shortfall): orders {len(orders)}, decisions {len(decided)}")
    assert [o["side"] for o in orders] == ["buy", "sell"]
    _assert_one_order_per_decision(orders, decided)
    assert trade.trade_id == held.decision_id
    assert trade.written_off == held.amount - left
    assert trade.sold_amount == Decimal(orders[1]["filled"]) == left
    rows: list[InventoryRecord] = read_ledger(engine.ledger, lambda s: s.inventory())
    [short] = [r for r in rows if r.kind == "shortfall"]
    assert short.amount == held.amount - left and short.decision_id == held.decision_id
    assert balances.get("SOL", {}).get("total", Decimal(0)) == 0


async def test_an_order_query_lagging_past_the_window_sends_no_second_buy(tmp_path: Path) -> None:
    """The buy's answer is lost and the order query misses it for 30 s, far past the 3 s
    consistency window, while the exchange's order list shows it: the retry finds it there
    (as the workflows' order activity does), never sends a second buy."""
    sim_proc, url = _sim(tmp_path, "--lookup-lag", "30")
    engine = Engine(tmp_path, url)
    async with SimControl(url) as sim:
        try:
            held = await _buy_with_lost_answer(engine, sim)
            await sim.set_price(SYMBOL, "151")
            [trade] = engine.wait_trades(1)
            orders = await _orders(sim)
        finally:
            engine.kill()
            kill(sim_proc)
    assert [o["side"] for o in orders] == ["buy", "sell"], orders
    _assert_one_order_per_decision(orders, engine.decided())
    buy = orders[0]
    assert held.amount == trade.bought_amount == Decimal(buy["filled"]) - Decimal(buy["fee_base"])


async def test_a_second_lost_answer_counts_the_window_from_the_last_attempt(
    tmp_path: Path,
) -> None:
    """The first create is refused (503), the retry's is accepted and its answer lost; the
    order query and the lists lag 4 s, inside the 5 s window. The third attempt comes 2 s
    after the second sent its buy: its window counts from that attempt, not from the
    decision (long past), so it waits and finds the buy instead of sending another."""
    sim_proc, url = _sim(tmp_path, "--lookup-lag", "4", "--list-lag", "4")
    window = {"order_consistency_window_seconds": "5", "order_activity_timeout_seconds": "7"}
    engine = Engine(tmp_path, url, **window)
    refused = {"endpoint": CREATE, "kind": "http_5xx", "status": 503, "count": 1}
    async with SimControl(url) as sim:
        try:
            held = await _buy_with_lost_answer(engine, sim, (refused, LOST))
            orders = await _orders(sim)
        finally:
            engine.kill()
            kill(sim_proc)
    assert [o["side"] for o in orders] == ["buy"], orders
    _assert_one_order_per_decision(orders, engine.decided())
    assert held.amount == Decimal(orders[0]["filled"]) - Decimal(orders[0]["fee_base"])
