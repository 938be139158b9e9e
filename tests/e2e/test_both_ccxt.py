"""FSM_MODE=both through the real ccxt client against the local Binance server, every part a
real process (``starter.py`` running the worker and the legacy engine, the server, the dev
server): the primary's orders reach the server, the shadow sends none (the server's order
log), both trade the same prices the test sets, the shadow's trades are booked simulated under
its engine with ids of its own, and a SIGKILL while both hold forgets nothing of either side.
Once with each engine as the primary (``HYBRID_PRIMARY``)."""

from __future__ import annotations

import asyncio
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from tests.e2e.helpers import (
    SIM_KEYS,
    binance_config,
    free_port,
    kill,
    run,
    spawn,
    start_sim,
    wait_state,
    wait_until,
)
from tests.e2e.test_both import Both, orders_in
from trader.binance_sim.control import SimControl
from trader.contracts import STATUS_MEMO_KEY, StatusMemo
from trader.core import ids
from trader.core.phases import Phase
from trader.core.state import CoinState
from trader.ledger import read_ledger
from trader.runtime.hybrid import LEGACY_LINEAGE_PREFIX
from trader.telegram_sim import FakeBotApi

pytestmark = pytest.mark.e2e

# One symbol per primary: the dev server outlives a test, and workflow ids are per symbol.
SYMBOLS = {"fsm": "SOL/USDT", "legacy": "ETH/USDT"}


def _orders_in(db: Path) -> list[tuple[str, str]]:
    """(client id, side) of every order a paper account (the shadow's) received."""
    return orders_in(db)


def _anchored(s: CoinState) -> bool:
    """IDLE with an anchor: a drop set now is a drop from it."""
    return s.phase is Phase.IDLE and s.entry_watch.anchor > 0


def _near(value: Decimal, price: str, bps: int = 60) -> bool:
    target = Decimal(price)
    return abs(value - target) <= target * bps / 10_000


def _on_server(
    tmp_path: Path, client: Client, symbol: str, primary: str
) -> tuple[subprocess.Popen[bytes], str, Both]:
    """The local Binance server at a static 150 for ``symbol`` and a ``both`` deployment on
    it that exits by price only (the test sets it)."""
    sim_proc, url = start_sim(tmp_path, "--static", f"{symbol}=150", "--balance", "USDT=10000")
    both = Both(
        tmp_path,
        client,
        symbol,
        primary=primary,
        env=SIM_KEYS,
        extra=binance_config(url),
        max_position_hold_minutes='"0"',
        cooldown_minutes='"0.02"',
        stop_loss_pct='"5"',
    )
    return sim_proc, url, both


async def _start_and_dip(both: Both, client: Client, sim: SimControl, wf_id: str) -> None:
    """Start the deployment; once both sides are anchored, the price 0.67 % below: both buy."""
    both.start()
    await both.wait_both(client, wf_id, _anchored, "anchored in IDLE")
    await sim.set_price(both.symbol, "149")


@pytest.mark.parametrize("primary", ["fsm", "legacy"])
async def test_both_on_binance_primary_trades_shadow_simulates_and_restart_keeps_both(
    dev_env, tmp_path: Path, primary: str
) -> None:
    client, symbol = dev_env.client, SYMBOLS[primary]
    sim_proc, url, both = _on_server(tmp_path, client, symbol, primary)
    shadow, wf_id = both.shadow, ids.workflow_id_for("binance", symbol)
    async with SimControl(url) as sim:
        try:
            both.start()
            await both.wait_both(client, wf_id, _anchored, "anchored in IDLE")
            await sim.set_price(symbol, "149")  # 0.67 % below both anchors: both buy
            fsm_held = await wait_state(
                client, wf_id, lambda s: s.phase is Phase.POSITION, timeout=120, what="FSM buy"
            )
            legacy_held = both.wait_legacy(lambda s: s.phase is Phase.POSITION, "legacy buy")
            assert legacy_held.lineage.startswith(LEGACY_LINEAGE_PREFIX)
            # The server saw the primary's buy only; the shadow's is in its own account.
            server = [(o["client_order_id"], o["side"]) for o in await sim.orders()]
            mine = {"fsm": fsm_held, "legacy": legacy_held}
            assert server == [(mine[primary].trade.buy_client_order_id, "buy")]
            shadow_db = both.data / f"shadow-{shadow}-binance.sqlite"
            assert _orders_in(shadow_db) == [(mine[shadow].trade.buy_client_order_id, "buy")]
            # Same price, both sides: each filled around the 149 the test set.
            assert _near(fsm_held.trade.entry_price, "149")
            assert _near(legacy_held.trade.entry_price, "149")

            # SIGKILL while both hold; the next process resumes both positions.
            both.kill()
            both.start()
            await wait_state(
                client,
                wf_id,
                lambda s: s.phase is Phase.POSITION and s.trade.decision_id is not None,
                timeout=120,
                what="the FSM position after the restart",
            )
            both.wait_legacy(
                lambda s: "reconcile (resumed after a stop)" in s.note, "the legacy account check"
            )
            await sim.set_price(symbol, "151")  # above take profit: both sell
            trades = both.wait_trades(2)
            both.kill()
            server_orders = await sim.orders()
        finally:
            both.kill()
            kill(sim_proc)
            await both.terminate(client)

    by_engine = {t.engine: t for t in trades}
    assert sorted(by_engine) == ["fsm", "legacy"], trades  # one trade each, none doubled
    assert by_engine[primary].simulated is False and by_engine[shadow].simulated is True
    assert by_engine["fsm"].trade_id == fsm_held.trade.decision_id
    assert by_engine["legacy"].trade_id == legacy_held.trade.decision_id
    assert by_engine["fsm"].trade_id != by_engine["legacy"].trade_id
    for t in trades:
        assert t.exit_reason == "take_profit" and _near(t.exit_price, "151"), t
    # The server: exactly the primary's buy and sell, each once; the shadow: none there.
    placed = both.placed()
    assert [(o["client_order_id"], o["side"]) for o in server_orders] == placed[primary]
    assert [o["side"] for o in server_orders] == ["buy", "sell"]
    assert _orders_in(shadow_db) == placed[shadow]
    assert not {c for c, _ in placed[shadow]} & {o["client_order_id"] for o in server_orders}
    events: list[dict[str, Any]] = both.events()
    assert {e["simulated"] for e in events if e["engine"] == shadow} == {True}
    assert {e["simulated"] for e in events if e["engine"] == primary} == {False}


async def test_both_refuses_to_swap_roles_over_a_shadow_position(dev_env, tmp_path: Path) -> None:
    """The FSM shadowed and holds a simulated position: a start with the FSM as primary
    must not adopt it on the real account (it would book real trades as simulated and sell
    coins never bought there). It exits 2 naming the symbol; no order reaches the server."""
    client, symbol = dev_env.client, "BNB/USDT"
    sim_proc, url, both = _on_server(tmp_path, client, symbol, "legacy")
    wf_id = ids.workflow_id_for("binance", symbol)
    async with SimControl(url) as sim:
        try:
            await _start_and_dip(both, client, sim, wf_id)
            await wait_state(
                client, wf_id, lambda s: s.phase is Phase.POSITION, timeout=120, what="FSM buy"
            )
            both.kill()
            swapped = run(
                "starter.py",
                "--config",
                str(both.cfg),
                env={**both.env, "HYBRID_PRIMARY": "fsm"},
                timeout=120,
            )
            orders = await sim.orders()
        finally:
            both.kill()
            kill(sim_proc)
            await both.terminate(client)
    assert swapped.returncode == 2, swapped.stdout[-1500:] + swapped.stderr[-1500:]
    # Refused before anything starts: the workflow named, no worker ran it on the real
    # account (its reconcile would have written the simulated position off).
    assert wf_id in swapped.stderr and "simulated" in swapped.stderr, swapped.stderr
    assert "Traceback" not in swapped.stderr
    assert not (both.data / "ledger.sqlite").exists() or not read_ledger(
        both.data / "ledger.sqlite", lambda store: store.inventory()
    )
    assert [o["side"] for o in orders] == ["buy"]  # the legacy primary's buy only


async def test_both_force_exit_and_stop_reach_primary_and_shadow(dev_env, tmp_path: Path) -> None:
    """``force-exit`` sells on both sides (the primary at the server, the shadow in its
    account), each answering on its own line; ``stop`` stops both: the workflow completes,
    the legacy engine ends, the process keeps its worker."""
    client, symbol = dev_env.client, "XRP/USDT"
    sim_proc, url, both = _on_server(tmp_path, client, symbol, "fsm")
    wf_id = ids.workflow_id_for("binance", symbol)
    async with SimControl(url) as sim:
        try:
            both.start()
            await both.wait_both(client, wf_id, _anchored, "anchored in IDLE")
            await sim.set_price(symbol, "149")
            await both.wait_both(client, wf_id, lambda s: s.phase is Phase.POSITION, "a buy")
            forced = both.command("force-exit", symbol, "--reason", "ops")
            assert forced.returncode == 0, forced.stdout + forced.stderr
            assert f"fsm (primary): {symbol}: accepted in position" in forced.stdout
            assert f"legacy (shadow, simulated): {symbol}: accepted in position" in forced.stdout
            trades = both.wait_trades(1, each=True)
            stopped = both.command("stop")
            assert stopped.returncode == 0, stopped.stdout + stopped.stderr
            assert f"fsm (primary): stopping: {symbol}" in stopped.stdout
            assert f"legacy (shadow, simulated): {symbol}: accepted" in stopped.stdout
            wait_until(
                lambda: "legacy engine stopped (operator's stop)" in both.tail(),
                timeout=60,
                what="the legacy engine to stop",
            )
            desc = await client.get_workflow_handle(wf_id).describe()
            for _ in range(120):
                if desc.status == WorkflowExecutionStatus.COMPLETED:
                    break
                await asyncio.sleep(0.5)
                desc = await client.get_workflow_handle(wf_id).describe()
            assert desc.status == WorkflowExecutionStatus.COMPLETED
            assert both.procs[-1].poll() is None  # the worker runs on until Ctrl-C
            orders = await sim.orders()
        finally:
            both.kill()
            kill(sim_proc)
            await both.terminate(client)
    assert sorted(t.engine for t in trades) == ["fsm", "legacy"]
    assert {t.exit_reason for t in trades} == {"force_exit"}
    assert [o["side"] for o in orders] == ["buy", "sell"]  # the primary's only
    assert {o["client_order_id"] for o in orders} == {c for c, _ in both.placed()["fsm"]}


async def test_a_live_worker_on_the_task_queue_never_runs_the_fsm_shadow(
    dev_env, tmp_path: Path
) -> None:
    """The FSM shadows (legacy primary) and an extra ``python worker.py`` configured live
    (``FSM_MODE=fsm``) polls the deployment's ``TASK_QUEUE``: the shadow's workflows are on
    queues of their own, so the live worker never warms one up (it would learn
    ``simulated=false``) nor sends its buy to the server."""
    client, symbol = dev_env.client, "ADA/USDT"
    sim_proc, url, both = _on_server(tmp_path, client, symbol, "legacy")
    wf_id = ids.workflow_id_for("binance", symbol)
    live_env = {**SIM_KEYS, "FSM_MODE": "fsm"}
    async with SimControl(url) as sim:
        try:
            both.procs.append(
                spawn("worker.py", "--config", str(both.cfg), env=live_env, log=tmp_path / "w.log")
            )
            both.start()
            await both.wait_both(client, wf_id, _anchored, "anchored in IDLE")
            desc = await client.get_workflow_handle(wf_id).describe()
            memo = await desc.memo_value(STATUS_MEMO_KEY, None, type_hint=StatusMemo)
            await sim.set_price(symbol, "149")
            fsm_held = await wait_state(
                client, wf_id, lambda s: s.phase is Phase.POSITION, timeout=120, what="FSM buy"
            )
            legacy_held = both.wait_legacy(lambda s: s.phase is Phase.POSITION, "legacy buy")
            orders = await sim.orders()
        finally:
            both.kill()
            kill(sim_proc)
            await both.terminate(client)
    assert desc.task_queue == f"{both.queue}-shadow"
    assert memo is not None and memo.simulated and fsm_held.simulated
    # The server: the legacy primary's buy only; the FSM's is in the shadow account.
    assert [o["client_order_id"] for o in orders] == [legacy_held.trade.buy_client_order_id]
    shadow_db = both.data / "shadow-fsm-binance.sqlite"
    assert _orders_in(shadow_db) == [(fsm_held.trade.buy_client_order_id, "buy")]


async def test_a_force_exit_reaches_a_legacy_primary_with_no_temporal(
    dev_env, tmp_path: Path
) -> None:
    """The legacy primary holds; the operator's ``force-exit`` is given where Temporal does
    not answer (an address nothing listens on): the primary still sells at the server, its
    answer first, and the FSM side's line says it was not reached (exit 2)."""
    client, symbol = dev_env.client, "DOT/USDT"
    sim_proc, url, both = _on_server(tmp_path, client, symbol, "legacy")
    wf_id = ids.workflow_id_for("binance", symbol)
    async with SimControl(url) as sim:
        try:
            await _start_and_dip(both, client, sim, wf_id)
            both.wait_legacy(lambda s: s.phase is Phase.POSITION, "legacy buy")
            no_server = {**both.env, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
            forced = run(
                "starter.py", "force-exit", symbol, "--config", str(both.cfg), env=no_server
            )
            [trade] = both.wait_trades(1)
            orders = await sim.orders()
        finally:
            both.kill()
            kill(sim_proc)
            await both.terminate(client)
    out = forced.stdout
    assert forced.returncode == 2, out + forced.stderr
    lines = out.splitlines()
    assert lines[0].startswith(f"legacy (primary): {symbol}: accepted in position"), out
    assert lines[1].startswith("fsm (shadow, simulated): not reached"), out
    assert "Traceback" not in forced.stderr
    assert (trade.engine, trade.exit_reason, trade.simulated) == ("legacy", "force_exit", False)
    assert [o["side"] for o in orders] == ["buy", "sell"]  # the legacy primary's


async def test_telegram_forceexit_reaches_a_legacy_primary_first(dev_env, tmp_path: Path) -> None:
    """``/forceexit`` from the chat in both mode with the legacy primary: the primary sells at
    the server (its answer first), the FSM shadow in its account (its answer after)."""
    client, symbol, chat = dev_env.client, "LINK/USDT", "5150515"
    with FakeBotApi() as bot:
        sim_proc, url, both = _on_server(tmp_path, client, symbol, "legacy")
        both.env |= {
            "TELEGRAM_TOKEN": "606060:E2E-tok",
            "TELEGRAM_CHAT_IDS": chat,
            "TELEGRAM_API_URL": bot.url,
        }
        wf_id = ids.workflow_id_for("binance", symbol)
        async with SimControl(url) as sim:
            try:
                await _start_and_dip(both, client, sim, wf_id)
                await both.wait_both(client, wf_id, lambda s: s.phase is Phase.POSITION, "a buy")
                both.procs.append(
                    spawn(
                        "starter.py",
                        "telegram",
                        "--config",
                        str(both.cfg),
                        env=both.env,
                        log=tmp_path / "bot.log",
                    )
                )
                bot.inject(chat, f"/forceexit {symbol}")
                answer: str = wait_until(
                    lambda: next((t for t in bot.texts(chat) if "(primary): " in t), None),
                    timeout=60,
                    what="the answer to /forceexit",
                )
                trades = both.wait_trades(2)
                orders = await sim.orders()
            finally:
                both.kill()
                kill(sim_proc)
                await both.terminate(client)
    primary, shadow = answer.splitlines()
    assert primary.startswith(f"legacy (primary): {symbol}: accepted in position"), answer
    assert shadow.startswith(f"fsm (shadow, simulated): {symbol}: accepted in position"), answer
    assert sorted((t.engine, t.exit_reason) for t in trades) == [
        ("fsm", "force_exit"),
        ("legacy", "force_exit"),
    ]
    assert [o["side"] for o in orders] == ["buy", "sell"]  # the legacy primary's, at the server
