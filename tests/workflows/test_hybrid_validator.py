"""The HybridValidator on a real dev server, over the paper exchange and a real SQLite
ledger: an order placed behind the bot's back, coins taken from the account while a symbol
holds, and the legacy engine really running with another take-profit on the same market,
each reported once (JSONL line, metric, notification) over many checks."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from decimal import Decimal as D
from pathlib import Path
from typing import cast

from temporalio.client import WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.worker import Worker

from activities.validator import ValidatorActivities, divergence_log_path
from tests.workflows.harness import TEST_PARAMS, Bench, TraderHandle, bench
from tests.workflows.unreadable_trader import IdleTrader, UnreadableTrader
from tests.workflows.validator_rig import (
    PREVIOUS_SHAPE_DROPS,
    UNKNOWN_ORDER_ID,
    AccountDown,
    Blinking,
    Delisted,
    LedgerDown,
    ValidatorRig,
    move_to,
    own_queue_worker,
    place_unknown_order,
    validator,
)
from trader import search as sa
from trader.config import load_settings
from trader.contracts import validator_task_queue
from trader.core.divergence import DivergenceKind, Tolerances
from trader.core.params import TraderParams
from trader.core.phases import Phase
from trader.exchange.paper import PaperExchange
from trader.exchange.port import Exchange
from trader.hub import MarketHub
from trader.ledger import LedgerStore
from trader.legacy.engine import LegacyEngine
from trader.legacy.store import StateStore, read_state, state_path
from trader.observe.metrics import TraderMetrics
from trader.runtime.validator import start_validator, validator_setup
from workflows.hybrid_validator import CHECKS_FAILED_NOTIFY, HybridValidator

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


async def _reported_once(
    v: ValidatorRig, b: Bench, kind: str, *, timeout: float = 60
) -> dict[str, object]:
    """Reported, then not again over ``CHECKS_AFTER`` more checks: one line, one count,
    one notification."""
    line = await v.wait_line(kind, timeout=timeout)
    await v.wait_checks(int(str(line["check"])) + CHECKS_AFTER, timeout=timeout)
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
            cleared = (await v.progress()).check  # that check may have read it short
            await v.wait_checks(cleared + 1 + Tolerances().clear_checks)
            b.exchange.set_balance("BTC", short)
            again = await v.wait_line("balance_short", n=2, timeout=120)
            assert int(str(again["check"])) > cleared + Tolerances().clear_checks
            assert v.counted("balance_short") == 2
            assert {r["kind"] for r in v.lines()} == {"unknown_order", "balance_short"}


async def test_a_divergence_that_blinks_out_across_continue_as_new_is_reported_once(
    dev_env, tmp_path
):
    """Present, absent one check (the last of a run), present: one episode, one report;
    later absent three checks, the first two the last of a run and the third the first of
    the next: the episode ends, and its return is reported again. Both only if ``absent``
    is carried through continue-as-new, by a validator started with the previous release's
    input (no ``absent``, no ``clear_checks``). Two checks per run: [1 2] [3 4] [5 6] [7 8]."""
    async with bench(dev_env.client, tmp_path) as b:
        await place_unknown_order(b.exchange)
        exchange = Blinking(b.exchange, blind={2, 5, 6, 7})
        async with validator(
            b,
            tmp_path,
            exchange=cast(Exchange, exchange),
            confirm_checks=1,
            checks_per_run=2,
            previous_input=True,
        ) as v:
            assert PREVIOUS_SHAPE_DROPS  # the input really lacks this release's fields
            p = await v.wait_checks(5)
            assert exchange.calls >= 5 and (await v.handle.describe()).run_id != v.first_run_id
            lines = v.lines("unknown_order")
            assert [r["symbol"] for r in lines] == ["BTC/USDT"], lines  # the blink: one
            assert p.tracker.reported.count(f"unknown_order:BTC/USDT:{UNKNOWN_ORDER_ID}") == 1
            back = await v.wait_line("unknown_order", n=2, timeout=120)  # three: a new one
            assert int(str(back["check"])) >= 7, back  # call 8: check 7 (from 0)


async def test_failed_checks_carry_what_was_reported_and_are_notified_once(dev_env, tmp_path):
    async with bench(dev_env.client, tmp_path) as b:
        await _holding(b)
        account = AccountDown(b.exchange)
        async with validator(b, tmp_path, exchange=cast(Exchange, account)) as v:
            await place_unknown_order(b.exchange)
            await v.wait_line("unknown_order")
            account.down = True
            down = (await v.progress()).check
            failed = await v.wait_checks(down + CHECKS_FAILED_NOTIFY + 2)
            assert failed.failed_checks >= CHECKS_FAILED_NOTIFY + 1
            assert v.checks("failed") >= 3 * CHECKS_FAILED_NOTIFY  # three attempts each
            blind = [t for t in b.notifier.sent if "checks in a row failed" in t]
            assert len(blind) == 1, b.notifier.sent  # once, not on every failed check
            account.down = False
            back = await v.wait_checks(failed.check + 4)
            assert back.failed_checks == 0
            # The order never left: not reported again after the failed checks.
            assert len(v.lines("unknown_order")) == 1


async def test_a_symbol_whose_state_cannot_be_read_keeps_its_order(dev_env, tmp_path):
    """A running SymbolTrader that cannot answer ``state``: reported as such, and the open
    order on its symbol (it may be its own) is not reported as unknown."""
    async with bench(dev_env.client, tmp_path) as b:
        queue = f"unreadable-{uuid.uuid4().hex[:8]}"
        async with Worker(b.client, task_queue=queue, workflows=[UnreadableTrader]):
            trader = await b.client.start_workflow(
                UnreadableTrader.run,
                id=f"trader:paper:BTC-USDT:{queue}",
                task_queue=queue,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.TRADING_SYMBOL, "BTC/USDT"),
                        SearchAttributePair(sa.TRADING_EXCHANGE, "paper"),
                    ]
                ),
            )
            try:
                await place_unknown_order(b.exchange)
                async with validator(b, tmp_path, task_queue=queue) as v:
                    line = await v.wait_line("fsm_state_unavailable")
                    assert line["symbol"] == "BTC/USDT"
                    await v.wait_checks(int(line["check"]) + CHECKS_AFTER)
                    assert v.lines("unknown_order") == [] and v.lines("symbol_not_running") == []
            finally:
                await trader.terminate("test over")


async def test_an_fsm_side_with_no_worker_is_one_divergence_per_outage(dev_env, tmp_path):
    """The FSM shadow down: its SymbolTraders Running on the server, no worker to answer
    their ``state`` query. Reported once as the side missing (one line, one count, one
    notification), never once per symbol; a worker back ends the episode after
    ``clear_checks``, and the next outage is reported again, once."""
    symbols = ("BTC/USDT", "ETH/USDT")
    async with bench(dev_env.client, tmp_path) as b:
        queue = f"shadow-{uuid.uuid4().hex[:8]}"

        def serving() -> Worker:
            return Worker(b.client, task_queue=queue, workflows=[IdleTrader])

        traders = []
        try:
            async with serving():
                for symbol in symbols:
                    traders.append(
                        await b.client.start_workflow(
                            IdleTrader.run,
                            symbol,
                            id=f"trader:paper:{symbol.replace('/', '-')}:{queue}",
                            task_queue=queue,
                            search_attributes=TypedSearchAttributes(
                                [
                                    SearchAttributePair(sa.TRADING_SYMBOL, symbol),
                                    SearchAttributePair(sa.TRADING_EXCHANGE, "paper"),
                                ]
                            ),
                        )
                    )
                async with validator(b, tmp_path, task_queue=queue, watchlist=symbols) as v:
                    await v.wait_checks(2)
                    assert v.lines() == []  # both answer: nothing to report
            # The worker is gone; the workflows run on with nobody to answer.
            async with validator(b, tmp_path, task_queue=queue, watchlist=symbols) as v:
                line = await _reported_once(v, b, "side_missing", timeout=120)
                assert line["symbol"] == "fsm" and line["values"] == {"fsm": "2 unanswered"}
                assert v.lines("fsm_state_unavailable") == [], v.lines()
                async with serving():  # back: the episode ends after clear_checks
                    now = (await v.progress()).check
                    back = await v.wait_checks(now + Tolerances().clear_checks + 1, timeout=120)
                    assert not [k for k in back.tracker.reported if "side_missing" in k]
                    assert len(v.lines()) == 1, v.lines()
                await v.wait_line("side_missing", n=2, timeout=120)  # the next outage
                assert v.lines("fsm_state_unavailable") == [], v.lines()
        finally:
            for t in traders:
                await t.terminate("test over")


async def test_a_symbol_whose_workflow_ended_while_holding_is_reported(dev_env, tmp_path):
    """fsm mode: the SymbolTrader is terminated in POSITION: the watchlist symbol runs no
    workflow, and the coins it left on the account are found."""
    async with bench(dev_env.client, tmp_path) as b:
        h, held = await _holding(b)
        async with validator(b, tmp_path) as v:
            await v.wait_checks(2)
            assert v.lines() == []
            await h.terminate("gone while holding")
            line = await v.wait_line("symbol_not_running")
            assert line["symbol"] == "BTC/USDT"
            surplus = await v.wait_line("balance_surplus")
            assert surplus["values"] == {"exchange": str(held), "fsm": "0"}


async def test_a_delisted_symbol_and_a_ledger_down_fail_only_their_part(dev_env, tmp_path):
    async with bench(dev_env.client, tmp_path) as b:
        await _holding(b)
        ledger = LedgerDown(b.ledger)
        exchange = Delisted(b.exchange, "DEAD/USDT")
        async with validator(
            b,
            tmp_path,
            exchange=cast(Exchange, exchange),
            ledger=cast(LedgerStore, ledger),
            watchlist=("BTC/USDT", "DEAD/USDT"),
        ) as v:
            await place_unknown_order(b.exchange)
            await v.wait_line("unknown_order")  # the rest of the check still runs
            assert v.lines("orders_unavailable")[0]["symbol"] == "DEAD/USDT"
            assert v.lines("ledger_unavailable")[0]["detail"].startswith("ledger: ledger dust")
            assert v.checks("failed") == 0 and v.checks("ok") >= 2
            assert ledger.reads >= 2  # the dust only: fsm mode reads no trades


def test_every_divergence_kind_and_check_outcome_is_exported_from_zero():
    # increase() over a series that appears at 1 never fires the alert on a first one.
    m = TraderMetrics("w")
    for kind in DivergenceKind:
        labels = {"kind": kind.value, "worker": "w"}
        assert m.registry.get_sample_value("trader_divergences_total", labels) == 0
    for outcome in ("ok", "failed"):
        labels = {"outcome": outcome, "worker": "w"}
        assert m.registry.get_sample_value("trader_validator_checks_total", labels) == 0


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


def _legacy_shadow(
    b: Bench, tmp_path: Path, params: TraderParams
) -> tuple[PaperExchange, StateStore, LegacyEngine]:
    """A legacy engine in shadow on its own paper account, on the bench's price feed."""
    shadow = PaperExchange(
        b.feed, db_path=tmp_path / "shadow.sqlite", quote_balances={"USDT": D("10000")}
    )
    store = StateStore(state_path(tmp_path / "legacy"))
    engine = LegacyEngine(
        params=params,
        watchlist=["BTC/USDT"],
        exchange=shadow,
        hub=MarketHub(shadow, poll_interval_s=0.05),
        store=store,
        ledger=b.ledger,
    )
    return shadow, store, engine


async def test_the_legacy_engine_with_another_take_profit_diverges(dev_env, tmp_path: Path):
    """Both engines on one market (one price feed); the legacy engine, in shadow on its own
    paper account, takes profit at 10 % instead of 3 %: when the FSM sells, they diverge in
    phase, trades and PnL, each reported once."""
    async with bench(dev_env.client, tmp_path) as b:
        shadow, store, engine = _legacy_shadow(
            b, tmp_path, TEST_PARAMS.model_copy(update={"take_profit_pct": D("10")})
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


async def test_a_legacy_engine_that_stopped_is_the_side_missing_not_its_last_rows(
    dev_env, tmp_path: Path
):
    """Both engines hold the same position; the legacy engine stops (its rows stay, in
    POSITION, matching the FSM's): one side_missing for the legacy side, not silence over
    rows that no longer move. Before, its last rows were compared as if it ran."""
    async with bench(dev_env.client, tmp_path) as b:
        shadow, store, engine = _legacy_shadow(b, tmp_path, TEST_PARAMS)
        stop = asyncio.Event()
        running = asyncio.create_task(engine.run(stop))
        try:
            h = await b.start()
            await b.wait_phase(h, Phase.IDLE)
            await _legacy_in(store.path, Phase.IDLE)
            b.set_price("BTC/USDT", "97.90")
            await b.wait_phase(h, Phase.POSITION)
            await _legacy_in(store.path, Phase.POSITION)
            async with validator(b, tmp_path, legacy_state=store.path) as v:
                await v.wait_checks(3)
                assert v.lines() == []  # both run and hold the same position
                stop.set()
                await running
                store.close()  # the engine is gone; its file and rows stay
                assert read_state(store.path).coins["BTC/USDT"].phase is Phase.POSITION
                line = await _reported_once(v, b, "side_missing", timeout=120)
                assert line["symbol"] == "legacy"
                assert line["values"] == {
                    "legacy": "not running (1 symbol in its state)",
                    "fsm": "1 running",
                }
                assert {r["kind"] for r in v.lines()} == {"side_missing"}, v.lines()
        finally:
            stop.set()
            await running
            with contextlib.suppress(Exception):
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
        own = validator_task_queue(queue)  # its own queue, never the deployment's
        async with Worker(
            b.client, task_queue=own, workflows=[HybridValidator], activities=[acts.validate]
        ):
            wf_id = await start_validator(b.client, setup)
            assert wf_id == f"hybrid-validator:paper:{queue}"
            desc = await b.client.get_workflow_handle(wf_id).describe()
            first_run = desc.run_id
            assert (setup.run_queue, desc.task_queue) == (own, own)
            slower = setup.model_copy(update={"interval_s": 2.0})
            assert await start_validator(b.client, slower) == wf_id  # found running
            handle: WorkflowHandle[HybridValidator, None] = b.client.get_workflow_handle_for(
                HybridValidator.run, wf_id
            )
            try:
                for _ in range(100):
                    p = await handle.query(HybridValidator.progress)
                    if p.setup.interval_s == 2.0 and p.check >= 1:
                        break
                    await asyncio.sleep(0.1)
                assert p.setup == slower and p.check >= 1
                # The same run took the new setup: not restarted (its checks carried on).
                assert (await handle.describe()).run_id == first_run
            finally:
                await handle.terminate("test over")


async def test_a_validator_of_the_previous_release_moves_to_its_own_queue_with_its_progress(
    dev_env, tmp_path
):
    """Started by the previous release (no ``run_queue``: on the deployment's queue, the FSM
    shadow's in both mode), it is given its own by a new starter's ``configure``: it
    continues as new there after its next check, its checks and what it reported carried
    (the unknown order, still there, is not reported again), checked by the new worker."""
    async with bench(dev_env.client, tmp_path) as b:
        await place_unknown_order(b.exchange)
        async with validator(b, tmp_path, confirm_checks=1) as v:
            await v.wait_line("unknown_order")
            before = await v.progress()
            assert before.setup.run_queue is None
            own = f"own-{uuid.uuid4().hex[:8]}"
            metrics = TraderMetrics("test")
            async with own_queue_worker(b, v, own, metrics):
                desc = await move_to(v, own)
                assert desc.run_id != v.first_run_id
                p = await v.wait_checks(before.check + CHECKS_AFTER)
                assert p.setup.run_queue == own and p.since_ts == before.since_ts
                key = f"unknown_order:BTC/USDT:{UNKNOWN_ORDER_ID}"
                assert p.tracker.reported.count(key) == 1, p.tracker
                assert len(v.lines("unknown_order")) == 1, v.lines()
                ok = metrics.registry.get_sample_value(
                    "trader_validator_checks_total", {"outcome": "ok", "worker": "test"}
                )
                assert (ok or 0) >= 1  # checked on the new queue's worker


async def test_a_start_says_when_the_running_validator_is_not_on_its_own_queue_yet(
    dev_env, tmp_path, caplog
):
    """One held on the deployment's queue (the previous release's, or an FSM shadow's that
    is down: nothing serves it here) cannot move until a worker of that queue runs its next
    check: the start says so, rather than leave the missing checks unexplained."""
    queue = f"vq-{uuid.uuid4().hex[:8]}"
    settings = load_settings(None, data_dir=tmp_path, task_queue=queue)
    setup = validator_setup(settings)
    old = setup.model_copy(update={"run_queue": None})
    wf_id = await start_validator(dev_env.client, old)  # on the deployment's queue
    try:
        caplog.set_level("WARNING", logger="trader.runtime.validator")
        assert await start_validator(dev_env.client, setup) == wf_id
        [said] = [r.getMessage() for r in caplog.records if "not its own" in r.getMessage()]
        assert f"runs on task queue {queue}, not its own {setup.run_queue} yet" in said
        caplog.clear()
        assert await start_validator(dev_env.client, old) == wf_id  # no run_queue: silent
        assert not [r for r in caplog.records if "not its own" in r.getMessage()]
    finally:
        await dev_env.client.get_workflow_handle(wf_id).terminate("test over")
