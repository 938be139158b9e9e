"""The HybridValidator on a real dev server, over the paper exchange and a real SQLite
ledger: an order placed behind the bot's back, coins taken from the account while a symbol
holds, and the legacy engine really running with another take-profit on the same market,
each reported once (JSONL line, metric, notification) over many checks."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal as D
from pathlib import Path
from typing import cast

from temporalio.worker import Worker

from activities.validator import ValidatorActivities, divergence_log_path
from tests.workflows.harness import TEST_PARAMS, Bench, TraderHandle, bench
from tests.workflows.validator_rig import (
    AccountDown,
    ValidatorRig,
    place_unknown_order,
    validator,
)
from trader.config import load_settings
from trader.core.divergence import DivergenceTracker
from trader.core.phases import Phase
from trader.exchange.paper import PaperExchange
from trader.exchange.port import Exchange
from trader.hub import MarketHub
from trader.legacy.engine import LegacyEngine
from trader.legacy.store import StateStore, read_state, state_path
from trader.runtime.validator import start_validator, validator_setup
from workflows.hybrid_validator import HybridValidator

CHECKS_AFTER = 5
"""Checks that must pass after a report without it being reported again."""


async def _holding(b: Bench) -> tuple[TraderHandle, D]:
    h = await b.start()
    await b.wait_phase(h, Phase.IDLE)
    b.set_price("BTC/USDT", "97.90")
    s = await b.wait_phase(h, Phase.POSITION)
    return h, s.remaining


def _sent(b: Bench, kind: str) -> list[str]:
    return [t for t in b.notifier.sent if f"divergence {kind}:" in t]


async def _reported_once(v: ValidatorRig, b: Bench, kind: str) -> dict[str, object]:
    """Reported, then not again over ``CHECKS_AFTER`` more checks: one line, one count,
    one notification."""
    line = await v.wait_line(kind)
    await v.wait_checks(int(str(line["check"])) + CHECKS_AFTER)
    assert len(v.lines(kind)) == 1, v.lines(kind)
    assert v.counted(kind) == 1
    for _ in range(50):  # the notification runs in the background of the workflow
        if _sent(b, kind):
            break
        await asyncio.sleep(0.1)
    assert len(_sent(b, kind)) == 1, b.notifier.sent
    return line


async def test_an_unknown_order_and_a_shortfall_are_each_reported_once(dev_env, tmp_path):
    async with bench(dev_env.client, tmp_path) as b:
        _, held = await _holding(b)
        async with validator(b, tmp_path, checks_per_run=4) as v:
            await v.wait_checks(3)
            assert v.lines() == []  # a symbol holding what the account holds: nothing
            await place_unknown_order(b.exchange)
            line = await _reported_once(v, b, "unknown_order")
            assert line["symbol"] == "BTC/USDT"
            assert line["values"] == {"exchange": "buy 0.2", "fsm": "unknown"}

            short = (held * D("0.9")).quantize(D("0.0001"))
            b.exchange.set_balance("BTC", short)
            line = await _reported_once(v, b, "balance_short")
            assert line["values"] == {"exchange": str(short), "fsm": str(held)}
            # Reported once across runs: four checks per run, so it continued as new.
            desc = await v.handle.describe()
            assert desc.run_id != v.first_run_id

            # Cleared, then back: a new episode, reported again.
            b.exchange.set_balance("BTC", held)
            cleared = (await v.progress()).check
            await v.wait_checks(cleared + 3)
            b.exchange.set_balance("BTC", short)
            await v.wait_checks(cleared + 3 + 4)
            assert len(v.lines("balance_short")) == 2
            assert v.counted("balance_short") == 2
            assert {r["kind"] for r in v.lines()} == {"unknown_order", "balance_short"}


async def test_a_check_that_cannot_read_the_account_is_skipped_and_the_next_one_reports(
    dev_env, tmp_path
):
    async with bench(dev_env.client, tmp_path) as b:
        await _holding(b)
        account = AccountDown(b.exchange)
        account.down = True
        async with validator(b, tmp_path, exchange=cast(Exchange, account)) as v:
            await place_unknown_order(b.exchange)
            failed = await v.wait_checks(1)  # three attempts, then skipped
            assert account.failed >= 3 and v.lines() == []  # (the next check may have begun)
            assert failed.tracker == DivergenceTracker()  # what it carried is unchanged
            account.down = False
            line = await v.wait_line("unknown_order")
            assert line["check"] >= 2 and len(v.lines()) == 1


async def test_without_hybrid_log_divergences_it_logs_and_counts_but_sends_nothing(
    dev_env, tmp_path
):
    async with bench(dev_env.client, tmp_path) as b:
        await _holding(b)
        async with validator(b, tmp_path, notify=False) as v:
            await place_unknown_order(b.exchange)
            line = await v.wait_line("unknown_order")
            await v.wait_checks(int(line["check"]) + 2)
            assert v.counted("unknown_order") == 1
            assert not [t for t in b.notifier.sent if "divergence" in t]
            scheduled = [
                e.activity_task_scheduled_event_attributes.activity_type.name
                for e in (await v.handle.fetch_history()).events
                if e.HasField("activity_task_scheduled_event_attributes")
            ]
            assert "notify" not in scheduled and "hybrid_validate" in scheduled


async def test_the_legacy_engine_with_another_take_profit_diverges(dev_env, tmp_path: Path):
    """Both engines on one market (one price feed); the legacy engine, in shadow on its own
    paper account, takes profit at 10 % instead of 3 %: when the FSM sells, they diverge in
    phase, trades and PnL, each reported once."""
    async with bench(dev_env.client, tmp_path) as b:
        shadow = PaperExchange(
            b.feed, db_path=tmp_path / "shadow.sqlite", quote_balances={"USDT": D("10000")}
        )
        store = StateStore(state_path(tmp_path / "legacy"))
        engine = LegacyEngine(
            params=TEST_PARAMS.model_copy(update={"take_profit_pct": D("10")}),
            watchlist=["BTC/USDT"],
            exchange=shadow,
            hub=MarketHub(shadow, poll_interval_s=0.05),
            store=store,
            ledger=b.ledger,
        )
        stop = asyncio.Event()
        running = asyncio.create_task(engine.run(stop))
        try:
            h = await b.start()
            await b.wait_phase(h, Phase.IDLE)
            await _legacy_in(store.path, Phase.IDLE)  # both anchored at 100
            b.set_price("BTC/USDT", "97.90")
            fsm = await b.wait_phase(h, Phase.POSITION)
            await _legacy_in(store.path, Phase.POSITION)
            assert read_state(store.path).coins["BTC/USDT"].remaining == fsm.remaining
            async with validator(b, tmp_path, legacy_state=store.path) as v:
                await v.wait_checks(3)
                assert v.lines() == []  # both hold the same position
                b.set_price("BTC/USDT", "101.50")  # the FSM's 3 % take-profit, not 10 %
                await b.wait_phase(h, Phase.COOLDOWN)
                phase = await _reported_once(v, b, "phase_class")
                assert phase["values"] == {"fsm": "cooldown", "legacy": "position"}
                trades = await _reported_once(v, b, "trades")
                assert str(trades["values"]["fsm"]).startswith("take_profit")  # type: ignore[index]
                assert trades["values"]["legacy"] == "none"  # type: ignore[index]
                await _reported_once(v, b, "realized_pnl")
                assert {r["kind"] for r in v.lines()} == {"phase_class", "trades", "realized_pnl"}
        finally:
            stop.set()
            await running
            store.close()
            await shadow.close()


async def _legacy_in(path: Path, phase: Phase, timeout: float = 30) -> None:
    for _ in range(int(timeout / 0.1)):
        coins = read_state(path).coins
        if "BTC/USDT" in coins and coins["BTC/USDT"].phase is phase:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"legacy engine not in {phase.value}: {read_state(path).coins}")


async def test_the_starter_and_workers_start_one_validator_and_reconfigure_it(dev_env, tmp_path):
    queue = f"vq-{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        None, data_dir=tmp_path, task_queue=queue, hybrid_validation_interval_s=1
    )
    setup = validator_setup(settings)
    assert (setup.legacy_state_path, setup.primary) == (None, "fsm")  # fsm: exchange only
    both = validator_setup(settings.model_copy(update={"fsm_mode": "both"}))
    assert both.legacy_state_path == str(state_path(tmp_path))
    async with bench(dev_env.client, tmp_path) as b:
        acts = ValidatorActivities(
            b.client, b.exchange, b.ledger, divergence_log=divergence_log_path(tmp_path)
        )
        async with Worker(
            b.client, task_queue=queue, workflows=[HybridValidator], activities=[acts.validate]
        ):
            wf_id = await start_validator(b.client, setup)
            assert wf_id == f"hybrid-validator:paper:{queue}"
            slower = setup.model_copy(update={"interval_s": 2.0})
            assert await start_validator(b.client, slower) == wf_id  # found running
            handle = b.client.get_workflow_handle_for(HybridValidator.run, wf_id)
            try:
                for _ in range(100):
                    p = await handle.query(HybridValidator.progress)
                    if p.setup.interval_s == 2.0 and p.check >= 1:
                        break
                    await asyncio.sleep(0.1)
                assert p.setup == slower and p.check >= 1
                runs = [
                    wf
                    async for wf in b.client.list_workflows(
                        f'WorkflowId = "{wf_id}" AND ExecutionStatus = "Running"'
                    )
                ]
                assert len(runs) <= 1  # visibility may lag; never two
            finally:
                await handle.terminate("test over")
