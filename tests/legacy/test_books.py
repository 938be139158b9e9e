"""The legacy engine's books as the workflows keep them: inventory and shortfall ledger rows
(written once, also across a restart), ERROR's balance cover (inventory first, then the
position), and the same notifications, on the real paper exchange."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.legacy.test_engine_start import SOL, Rig, _market_buy, _run_until
from trader import contracts as c
from trader.core.inventory import InventoryMove
from trader.core.phases import Phase
from trader.core.rules import ExitReason
from trader.core.state import CoinState
from trader.ledger import read_trades
from trader.legacy.store import read_state


class BooksRig(Rig):
    """The rig with a notifier that keeps what it was sent (or fails, if told to)."""

    def __init__(self, tmp: Path, *, failing: bool = False, **overrides: Any) -> None:
        super().__init__(tmp, balance_settle_seconds=0.2, cooldown_minutes=0, **overrides)
        self.sent: list[str] = []
        self.keys: list[str] = []
        self.failing = failing
        self.notify = self.send

    async def send(self, text: str, *, key: str = "") -> None:
        self.sent.append(text)
        self.keys.append(key)
        if self.failing:
            raise ConnectionError("telegram is down")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[BooksRig]:
    r = BooksRig(tmp_path)
    yield r
    await r.close()


async def _holding(rig: Rig, amount: Decimal, phase: Phase = Phase.POSITION) -> CoinState:
    """A position bought on the paper account (and held there), with a standing stop-loss
    exit, so the engine sells it at once."""
    ex = rig.exchange
    bought = await _market_buy(ex, amount, f"seed-{amount}")
    s = CoinState(symbol=SOL, phase=phase, lineage="abc", simulated=True)
    s.market = (await ex.load_markets())[SOL]
    s.trade.decision_id = f"{SOL}:abc:1"
    s.trade.amount = bought.filled - bought.fee_base
    s.trade.entry_price = bought.average or Decimal(0)
    s.trade.entry_cost = bought.filled * s.trade.entry_price
    s.trade.entry_fee = bought.fee
    s.trade.entry_ts = time.time()
    s.trade.exit_reason = ExitReason.STOP_LOSS
    return s


async def _kinds(rig: Rig) -> list[str]:
    return [r.kind for r in (await (await rig.books()).inventory())]


def _booked(rig: Rig) -> bool:
    """The trade is over: its row is written *and* the state that closes its books is saved
    (the row commits while the runner is still inside ``record_trade``: stopping the engine
    there would cut POST_TRADE short). A poll while the engine runs: stores of its own."""
    coin = read_state(rig.store.path).coins.get(SOL)
    done = coin is not None and coin.phase in (Phase.COOLDOWN, Phase.IDLE)
    return done and bool(read_trades(rig.ledger.url))


async def test_an_exit_finding_a_short_balance_writes_a_shortfall_row_and_notifies(
    rig: BooksRig,
) -> None:
    s = await _holding(rig, Decimal("1"))
    held = s.trade.amount
    rig.exchange.set_balance("SOL", held - Decimal("0.4"))  # 0.4 left the account
    rig.store.save(s)
    engine = rig.engine([SOL])
    await _run_until(engine, lambda: _booked(rig), "the exit", in_thread=True)
    [row] = await (await rig.books()).inventory()
    assert row.kind == "shortfall" and row.amount == Decimal("0.4") and row.engine == "legacy"
    assert row.cost == (s.trade.entry_cost + s.trade.entry_fee) * Decimal("0.4") / held
    assert row.record_id == "SOL-USDT:abc:shortfall:1" and row.decision_id == s.trade.decision_id
    [trade] = await (await rig.books()).trades()
    assert trade.written_off == Decimal("0.4") and trade.sold_amount == held - Decimal("0.4")
    sells = [o for o in rig.exchange.all_orders() if o.side.value == "sell" and o.filled > 0]
    assert trade.engine == "legacy" and trade.decision_id == s.trade.decision_id
    assert trade.sell_client_order_ids == [o.client_order_id for o in sells] != []
    assert trade.exit_price == trade.exit_proceeds / trade.sold_amount
    assert trade.exit_price == sum(o.cost for o in sells) / sum(o.filled for o in sells)
    shortfalls = [t for t in rig.sent if "shortfall: the account holds 0.4 SOL less" in t]
    assert len(shortfalls) == 1 and shortfalls[0].startswith(f"{SOL}: ")
    assert any(t.startswith("[SIMULATED] SELL SOL/USDT (stop_loss)") for t in rig.sent), rig.sent
    saved = read_state(rig.store.path).coins[SOL]
    assert (await (await rig.books()).total_pnl(simulated=True)) == saved.totals.realized_pnl
    assert saved.ledger_seq == 1 and rig.store.outbox() == []
    # Each message keyed once, on the lineage and the notify_seq of a state saved first.
    assert len(set(rig.keys)) == len(rig.keys) == len(rig.sent)
    assert rig.keys == [f"legacy:paper:SOL-USDT:abc:n{n}" for n in range(1, saved.notify_seq + 1)]


async def test_an_unsellable_remainder_is_carried_with_a_row(tmp_path: Path, caplog: Any) -> None:
    """Below the market minimum: the trade carries it as inventory, a ``carried`` row says
    so; the notifier fails, and trading goes on (the failure is logged)."""
    rig = BooksRig(tmp_path, failing=True)
    try:
        s = await _holding(rig, Decimal("1"))
        s.trade.sold_amount = s.trade.amount - Decimal("0.02")  # sold but 0.02 (< 5 USDT)
        s.trade.exit_proceeds = s.trade.sold_amount * s.trade.entry_price
        rig.exchange.set_balance("SOL", Decimal("0.02"))
        rig.store.save(s)
        engine = rig.engine([SOL])
        with caplog.at_level(logging.WARNING, logger="trader.legacy.engine"):
            await _run_until(engine, lambda: _booked(rig), "the exit", in_thread=True)
        [row] = await (await rig.books()).inventory()
        assert row.kind == "carried" and row.amount == Decimal("0.02")
        saved = read_state(rig.store.path).coins[SOL]
        assert saved.inventory.amount == Decimal("0.02")
        assert row.cost == saved.inventory.cost + saved.inventory.fee
        assert any("kept 0.02 SOL as inventory" in t for t in rig.sent), rig.sent
        assert "notification (inventory) failed: telegram is down" in caplog.text
        assert saved.phase in (Phase.COOLDOWN, Phase.IDLE)  # the notifier blocked nothing
    finally:
        await rig.close()


async def test_error_writes_off_missing_inventory_first_then_the_position(rig: BooksRig) -> None:
    """ERROR finds the account short of position + inventory: the inventory (older coins)
    is written off first, a loss outside the trade; the rest of the gap from the position.
    The ledger's total equals the state's realized PnL once the trade is sold."""
    s = await _holding(rig, Decimal("1"), phase=Phase.ERROR)
    s.inventory.amount, s.inventory.cost, s.inventory.fee = (
        Decimal("0.3"),
        Decimal("30"),
        Decimal("0.03"),
    )
    s.last_error = "place_sell failed: timeout"
    rig.exchange.set_balance("SOL", s.trade.amount - Decimal("0.2"))  # 0.5 short in all
    rig.store.save(s)
    engine = rig.engine([SOL])
    await _run_until(engine, lambda: _booked(rig), "the recovery and the exit", in_thread=True)
    rows = await (await rig.books()).inventory()
    assert [(r.kind, r.amount) for r in rows] == [
        ("inventory_write_off", Decimal("0.3")),
        ("shortfall", Decimal("0.2")),
    ]
    assert rows[0].cost == Decimal("30.03")
    saved = read_state(rig.store.path).coins[SOL]
    assert saved.inventory.amount == 0 and (await (await rig.books()).trades())[
        0
    ].written_off == Decimal("0.2")
    assert (await (await rig.books()).total_pnl(simulated=True)) == saved.totals.realized_pnl
    assert f"{SOL} in ERROR: place_sell failed: timeout" in rig.sent
    assert sum("shortfall: " in t for t in rig.sent) == 2


async def test_a_balance_covering_what_is_held_writes_nothing_off(rig: BooksRig) -> None:
    s = await _holding(rig, Decimal("1"), phase=Phase.ERROR)
    rig.store.save(s)
    engine = rig.engine([SOL])
    await _run_until(engine, lambda: _booked(rig), "the recovery and the exit", in_thread=True)
    assert await _kinds(rig) == [] and (await (await rig.books()).trades())[0].written_off == 0


async def test_rows_committed_before_a_crash_are_written_once_after_it(rig: BooksRig) -> None:
    """Killed right after the state and its row were committed, before the ledger write:
    the next start writes it; later starts (and the symbol's own saves) never again."""
    s = await _holding(rig, Decimal("1"), phase=Phase.COOLDOWN)
    s.trade.decision_id = None
    s.ledger_seq = 1
    move = InventoryMove("inventory_write_off", Decimal("0.3"), Decimal("30"), "gone")
    record = c.InventoryRecord.of(s, move, ts=time.time(), simulated=True, engine="legacy")
    rig.store.save(s, [record])  # the crash point: committed, not in the ledger
    assert (await (await rig.books()).inventory()) == [] and rig.store.outbox() == [record]
    for _ in range(2):
        stop = asyncio.Event()
        stop.set()
        await rig.engine([SOL]).run(stop)
    assert [r.record_id for r in (await (await rig.books()).inventory())] == [record.record_id]
    assert rig.store.outbox() == []


async def test_a_restart_after_the_rows_were_written_writes_no_more(rig: BooksRig) -> None:
    """The write-off happened (rows and state saved); the engine restarted from the saved
    state finds nothing to write off again: the row ids come from the saved ``ledger_seq``."""
    s = await _holding(rig, Decimal("1"), phase=Phase.ERROR)
    s.trade.exit_reason = None  # no exit: it keeps holding after the recovery
    rig.exchange.set_balance("SOL", s.trade.amount - Decimal("0.2"))
    rig.store.save(s)
    first = rig.engine([SOL])
    await _run_until(first, lambda: first.runners[SOL].s.phase is Phase.POSITION, "recovery")
    assert await _kinds(rig) == ["shortfall"]
    saved = read_state(rig.store.path).coins[SOL]
    saved.phase = Phase.ERROR  # restarted into ERROR again: it reconciles once more
    rig.store.save(saved)
    second = rig.engine([SOL])
    await _run_until(second, lambda: second.runners[SOL].s.phase is Phase.POSITION, "recovery")
    assert await _kinds(rig) == ["shortfall"]
    assert read_state(rig.store.path).coins[SOL].ledger_seq == 1
