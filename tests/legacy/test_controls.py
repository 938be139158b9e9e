"""The legacy engine's operator controls below the CLI: the request file (each request
taken once, or withdrawn), the force-exit rule shared with the workflows, the reconcile at
start, and ``stuck`` from the persisted state."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.legacy.test_engine_start import SOL, Rig, _held, _market_buy, _run_until, rig
from trader.core.controls import force_exit_refusal
from trader.core.phases import Phase
from trader.core.state import CoinState
from trader.legacy import requests
from trader.legacy.requests import Kind, RequestQueue
from trader.legacy.store import read_state
from trader.runtime.legacy import legacy_stuck

__all__ = ["rig"]  # the fixture


# --- the request file ---------------------------------------------------------------------
def test_a_request_is_taken_once_and_answered(tmp_path: Path) -> None:
    path = requests.requests_path(tmp_path)
    req = requests.submit(path, Kind.FORCE_EXIT, [SOL], reason="ops")
    queue = RequestQueue(path)
    [taken] = queue.take()
    assert taken == req
    assert queue.take() == []  # taken once, never applied twice
    queue.answer(req.id, [requests.Answer(symbol=SOL, accepted=True, detail="exiting: ops")])
    [answer] = requests.wait(path, req.id, timeout_s=5) or []
    assert answer.accepted and answer.detail == "exiting: ops"


def test_a_request_nobody_took_is_withdrawn_and_never_applied(tmp_path: Path) -> None:
    path = requests.requests_path(tmp_path)
    req = requests.submit(path, Kind.STOP, close_positions=True)
    assert requests.wait(path, req.id, timeout_s=5, alive=False) is None
    assert RequestQueue(path).take() == []  # an engine started later does not see it


def test_no_engine_is_alive_without_a_live_pid_in_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "legacy_state.sqlite.lock"
    assert not requests.engine_alive(lock)
    lock.write_text("999999999\n")
    assert not requests.engine_alive(lock)


# --- the force-exit rule (the workflows' too) ---------------------------------------------
def test_force_exit_is_refused_when_flat_and_taken_while_holding() -> None:
    assert force_exit_refusal(CoinState(symbol=SOL, phase=Phase.IDLE)) == "no position"
    assert force_exit_refusal(_held()) is None
    selling = _held()
    selling.phase = Phase.WAIT_SELL_FILL
    assert force_exit_refusal(selling) == "already selling"
    erred = _held()
    erred.phase = Phase.ERROR
    assert force_exit_refusal(erred) is None
    assert force_exit_refusal(erred, in_error=False) == "no position"


def test_the_engine_answers_per_symbol(rig: Rig) -> None:
    rig.store.save(_held())
    engine = rig.engine([SOL, "BTC/USDT"])
    req = requests.Request(id="r1", kind=Kind.FORCE_EXIT, symbols=(SOL, "BTC/USDT", "XRP/USDT"))
    sol, btc, xrp = engine.handle(req)
    assert sol.accepted and sol.phase == "position" and sol.detail == "exiting: manual"
    assert not btc.accepted and btc.detail == "no position"
    assert not xrp.accepted and xrp.detail.startswith("not traded by this engine")
    saved = read_state(rig.store.path).coins
    assert saved[SOL].trade.force_exit_reason == "manual"  # saved at once
    assert "force_exit (manual) ignored in warmup: no position" in saved["BTC/USDT"].note


# --- the reconcile at start ---------------------------------------------------------------
async def _resume_held(rig: Rig, *, bought: bool) -> str:
    ex = rig.exchange
    s = _held()
    s.market = (await ex.load_markets())[SOL]
    s.simulated = True
    if bought:
        order = await _market_buy(ex, Decimal("0.5"), "seed-1")
        s.trade.amount = order.filled - order.fee_base
        s.trade.entry_price = order.average or Decimal(0)
    s.trade.entry_ts = time.time()
    s.controls.shutdown_requested = True  # the last run was stopped: over now
    rig.store.save(s)
    engine = rig.engine([SOL])
    runner = engine.runners[SOL]
    assert runner.s.controls.reconcile_requested == "resumed after a stop"
    assert not runner.s.controls.shutdown_requested
    # Done once its note is written (a short balance is read again before it counts).
    await _run_until(
        engine,
        lambda: (
            runner.s.controls.reconcile_requested is None
            and runner.s.note.startswith("reconcile (resumed")
        ),
        "the start's reconcile",
    )
    return read_state(rig.store.path).coins[SOL].note


async def test_a_resumed_position_the_account_covers(rig: Rig) -> None:
    note = await _resume_held(rig, bought=True)
    assert note.startswith("reconcile (resumed after a stop): the account holds ")
    assert "covering the" in note
    assert read_state(rig.store.path).coins[SOL].phase is Phase.POSITION  # trades on


async def test_a_resumed_position_the_account_does_not_hold_is_written_off(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """As the workflow's reconcile: confirmed by a second read, booked as a shortfall (a
    ledger row, a loss in the realized PnL), and the trade's books closed: never left on
    the books at cost until some later sell."""
    s = _held()
    s.market = (await rig.exchange.load_markets())[SOL]
    s.simulated, s.trade.entry_ts = True, time.time()
    s.trade.entry_cost = s.trade.amount * s.trade.entry_price  # what was paid for it
    s.controls.shutdown_requested = True  # the last run was stopped
    rig.store.save(s)
    engine = rig.engine([SOL])
    runner = engine.runners[SOL]
    await _run_until(engine, lambda: runner.s.totals.trades_closed == 1, "the books closed")
    [row] = await (await rig.books()).inventory()
    assert (row.kind, row.amount) == ("shortfall", Decimal("1.25"))
    [trade] = await (await rig.books()).trades()
    assert trade.written_off == Decimal("1.25") and trade.sold_amount == 0
    assert runner.s.totals.realized_pnl == trade.net_pnl < 0
    assert (
        "the account holds 0 SOL, 1.25 less than the 1.25 this symbol held: 1.25 written off"
        in caplog.text
    )


# --- stuck --------------------------------------------------------------------------------
def test_stuck_reads_the_persisted_state(rig: Rig) -> None:
    now = time.time()
    waiting = _held()
    waiting.phase, waiting.phase_since = Phase.WAIT_FILL, now - 600
    rig.store.save(waiting)
    rig.store.save(CoinState(symbol="BTC/USDT", phase=Phase.IDLE, phase_since=now - 600))
    rig.store.save(CoinState(symbol="XRP/USDT", phase=Phase.PLACE_BUY, phase_since=now - 5))
    [row] = legacy_stuck(rig.settings, timeout_s=60, now=now)
    assert (row.symbol, row.phase) == (SOL, "wait_fill")
    assert [r.symbol for r in legacy_stuck(rig.settings, timeout_s=1, now=now)] == [
        SOL,
        "XRP/USDT",
    ]
