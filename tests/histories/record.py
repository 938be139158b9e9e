"""Record the committed replay histories from real runs on the time-skipping server.

    python -m tests.histories.record              # record the histories not yet committed
    python -m tests.histories.record NAME --force # re-record one on purpose

An existing file is never overwritten without ``--force``: a committed history is what
proves that workflows recorded by older code still replay. When a change adds commands
behind ``workflow.patched``, record a history under a *new* name instead (e.g.
``lifecycle_take_profit_memo``, recorded with the "status-memo" patch active).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.timeskip import skip
from tests.workflows.harness import Bench, HangingAcquire, bench
from trader import contracts as c
from trader.core.phases import Phase
from trader.exchange.paper import PaperFaults
from trader.observe.watch_live import watch_live
from trader.runtime.client import ensure_search_attributes
from trader.runtime.converter import DATA_CONVERTER
from trader.telegram.notifier import TelegramNotifier
from trader.telegram_sim import FakeBotApi, Fault

OUT = Path(__file__).parent


async def _finish(b, h, name: str) -> None:
    await h.signal("shutdown", c.ShutdownRequest(close_position=True))
    await h.result()
    history = await h.fetch_history()
    (OUT / f"{name}.json").write_text(history.to_json())
    print(f"{name}: {len(history.events)} events")


async def take_profit_trade(env: WorkflowEnvironment, b: Bench) -> WorkflowHandle[Any, Any]:
    """The committed lifecycle's scenario: buy on a drop, take profit, cool down, IDLE."""
    h = await b.start()
    await b.wait_phase(h, Phase.IDLE)
    b.set_price("BTC/USDT", "97.90")
    await b.wait_phase(h, Phase.POSITION)
    b.set_price("BTC/USDT", "101.50")
    await b.wait_phase(h, Phase.COOLDOWN)
    await skip(env, 15 * 60 + 1)
    await b.wait_phase(h, Phase.IDLE)
    return h


async def lifecycle(env, tmp: Path) -> None:
    async with bench(env.client, tmp) as b:
        await _finish(b, await take_profit_trade(env, b), "lifecycle_take_profit")


async def lifecycle_take_profit_memo(env, tmp: Path) -> None:
    """The take-profit lifecycle with the "status-memo" patch active, including a POSITION
    checkpoint (a watch returning without a decision), which upserts the memo too."""
    async with bench(env.client, tmp) as b:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.POSITION)
        b.set_price("BTC/USDT", "98.50")  # inside TP/SL: only a checkpoint can report it
        await b.wait_for(
            h, lambda s: s.current_price == D("98.50"), timeout=30, what="a POSITION checkpoint"
        )
        b.set_price("BTC/USDT", "101.50")
        await b.wait_phase(h, Phase.COOLDOWN)
        await skip(env, 15 * 60 + 1)
        await b.wait_phase(h, Phase.IDLE)
        await _finish(b, h, "lifecycle_take_profit_memo")


async def partial_sells(env, tmp: Path) -> None:
    async with bench(env.client, tmp) as b:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.POSITION)
        b.exchange.faults = PaperFaults(max_fill_ratio=D("0.5"))
        b.set_price("BTC/USDT", "101.50")
        await b.wait_phase(h, Phase.COOLDOWN, timeout=40)
        await _finish(b, h, "partial_sell_ladder")


async def error_recovery(env, tmp: Path) -> None:
    async with bench(env.client, tmp) as b:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.POSITION)
        b.exchange.faults = PaperFaults(reject_creates_with="InsufficientFunds")
        b.set_price("BTC/USDT", "95.00")
        await b.wait_phase(h, Phase.ERROR)
        b.exchange.faults = None
        await skip(env, 11)
        await b.wait_phase(h, Phase.COOLDOWN, timeout=30)
        await _finish(b, h, "error_recovery")


async def reality_shortfall(env, tmp: Path) -> None:
    """Behind the exchange-reality patch: 10 % of the coins leave the account, the stop-loss
    sell is refused (ERROR), the price bounces, the standing exit sells what is held and
    writes off the rest."""
    async with bench(env.client, tmp) as b:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        s = await b.wait_phase(h, Phase.POSITION)
        b.exchange.set_balance("BTC", (s.trade.amount * D("0.9")).quantize(D("0.0001")))
        b.exchange.faults = PaperFaults(reject_creates_with="InsufficientFunds")
        b.set_price("BTC/USDT", "95.00")
        await b.wait_phase(h, Phase.ERROR)
        b.set_price("BTC/USDT", "98.50")
        b.exchange.faults = None
        await skip(env, 11)
        await b.wait_phase(h, Phase.COOLDOWN, timeout=30)
        await _finish(b, h, "reality_shortfall")


async def reality_inventory(env, tmp: Path) -> None:
    """Behind the exchange-reality patch: an exit below the market minimum is carried as
    inventory, which joins the next trade."""
    async with bench(env.client, tmp) as b:
        h = await b.start(trade_budget=D("5.05"))
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.POSITION)
        b.set_price("BTC/USDT", "95.00")
        await b.wait_phase(h, Phase.COOLDOWN)
        await asyncio.sleep(1.5)  # let the hub's pre-cooldown ticker age (wall time)
        await skip(env, 15 * 60 + 1)
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "93.00")
        await b.wait_phase(h, Phase.POSITION)
        b.set_price("BTC/USDT", "99.00")
        await b.wait_for(h, lambda s: s.totals.trades_closed == 2, timeout=30, what="trade 2")
        await _finish(b, h, "reality_inventory")


async def slot_retry(env, tmp: Path) -> None:
    """The take-profit lifecycle with the "slot-retry" patch (acquire_slot retried until
    answered), and the Portfolio that granted it through the broker's ``acquire_many``."""
    async with bench(env.client, tmp) as b:
        await _finish(b, await take_profit_trade(env, b), "slot_retry_take_profit")
        history = await env.client.get_workflow_handle(b.portfolio_id).fetch_history()
        (OUT / "portfolio_acquire_many.json").write_text(history.to_json())
        print(f"portfolio_acquire_many: {len(history.events)} events")


async def notify_drain(env, tmp: Path) -> None:
    """The take-profit lifecycle with Telegram down for the entry message (every attempt
    502), then a stop: the "bounded-notify-drain" patch waits NOTIFY_DRAIN and gives the
    message up (a timer and an activity cancel)."""
    with FakeBotApi() as api:
        api.add_fault(Fault("fail", status=502, count=10_000, match="BUY"))
        notifier = TelegramNotifier(
            token="1:record", chat_ids=["1"], api_url=api.url, sent_log=tmp / "sent.sqlite"
        )
        try:
            async with bench(env.client, tmp, notify_with=notifier) as b:
                await _finish(b, await take_profit_trade(env, b), "notify_drain_given_up")
        finally:
            await notifier.close()


async def slot_wait(env, tmp: Path) -> None:
    """The take-profit lifecycle with the "slot-wait" patch (acquire_slot on the watch
    queue, raced against a stop or a pause)."""
    async with bench(env.client, tmp) as b:
        await _finish(b, await take_profit_trade(env, b), "slot_wait_take_profit")


async def slot_wait_stopped(env, tmp: Path) -> None:
    """A stop while the Portfolio does not answer: the slot request cancelled, the entry
    abandoned and its decision released."""
    await _stopped_waiting_for_a_slot(env, tmp, "slot_wait_stopped", slot_queue=False)


async def _stopped_waiting_for_a_slot(env, tmp: Path, name: str, *, slot_queue: bool) -> None:
    """The Portfolio never answers; the stop comes once acquire_slot started (on the slot
    queue if ``slot_queue``: past the slot-local patch's local attempt)."""
    hang = HangingAcquire(env.client)
    async with bench(env.client, tmp, stand_ins=hang.stand_in) as b, hang:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.ENTRY_EVAL)
        await (hang.slot_queue_started if slot_queue else hang.started).wait()
        await _finish(b, h, name)


async def slot_local(env, tmp: Path) -> None:
    """The take-profit lifecycle with the "slot-local" patch: the slot granted by the local
    attempt (a marker, no acquire_slot activity)."""
    async with bench(env.client, tmp) as b:
        await _finish(b, await take_profit_trade(env, b), "slot_local_take_profit")


async def slot_local_stopped(env, tmp: Path) -> None:
    """Behind the "slot-local" patch, the Portfolio not answering: the local attempt times
    out, the slot queue is asked, and a stop cancels that wait and releases the decision."""
    await _stopped_waiting_for_a_slot(env, tmp, "slot_local_stopped", slot_queue=True)


async def portfolio_late_requests(env, tmp: Path) -> None:
    """A Portfolio answering late requests: a released and a refused decision asked again
    (refused, both), a request after its attempt ended (expired), then a fresh one."""
    from temporalio.worker import Worker

    from workflows.portfolio import Portfolio

    def req(d: str, expires_at: float | None = None) -> c.SlotRequest:
        return c.SlotRequest(decision_id=d, symbol=f"{d.upper()}/USDT", expires_at=expires_at)

    async with Worker(env.client, task_queue="record-portfolio", workflows=[Portfolio]):
        h = await env.client.start_workflow(
            Portfolio.run,
            c.PortfolioInput(max_trades=1),
            id="portfolio:record",
            task_queue="record-portfolio",
        )
        await h.execute_update(Portfolio.acquire_many, c.SlotBatch(requests=[req("a"), req("b")]))
        await h.signal(Portfolio.release, "a")
        late = [req("a"), req("b"), req("c", expires_at=1.0), req("c")]
        await h.execute_update(Portfolio.acquire_many, c.SlotBatch(requests=late))
        await h.terminate("recorded")
        history = await h.fetch_history()
    (OUT / "portfolio_late_requests.json").write_text(history.to_json())
    print(f"portfolio_late_requests: {len(history.events)} events")


async def error_window(env, tmp: Path) -> None:
    """Behind the "error-window-from-entry" patch: a buy whose creates all fail (the
    place_order activity gives up after waiting out its window, well after the decision),
    then ERROR backs off 1 s, finds no order and waits out the window since it entered
    ERROR (a timer old code did not start) before it looks again and concludes flat."""
    async with bench(env.client, tmp) as b:
        h = await b.start(fsm_max_retries=2, fsm_backoff_base_seconds=1)
        await b.wait_phase(h, Phase.IDLE)
        b.exchange.faults = PaperFaults(fail_creates=2)
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.ERROR, timeout=30)
        await skip(env, 10)
        await b.wait_for(
            h,
            lambda s: any(r.src is Phase.ERROR for r in s.phase_history),
            timeout=30,
            what="ERROR's reconcile",
        )
        await _finish(b, h, "error_window_from_entry")


async def _validator_run(
    tmp: Path, name: str, *, down_checks: int, checks_per_run: int = 3
) -> None:
    """A HybridValidator's first run on a dev server (the test server has no visibility
    queries) beside a symbol holding a position; an order placed behind the bot's back after
    the first check. ``down_checks``: the first checks that cannot read the account (three
    attempts each, then skipped)."""
    from typing import cast

    from tests.workflows.validator_rig import AccountDown, place_unknown_order, validator
    from trader.exchange.port import Exchange

    async with _dev_server() as dev, bench(dev.client, tmp) as b:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.POSITION)
        account = AccountDown(b.exchange)
        account.down = down_checks > 0
        async with validator(
            b,
            tmp,
            checks_per_run=checks_per_run,
            confirm_checks=1,
            exchange=cast(Exchange, account),
        ) as v:
            await v.wait_checks(max(1, down_checks))
            account.down = False
            await place_unknown_order(b.exchange)
            await v.wait_checks(checks_per_run + 1)
            first = dev.client.get_workflow_handle(v.handle.id, run_id=v.first_run_id)
            history = await first.fetch_history()
    (OUT / f"{name}.json").write_text(history.to_json())
    print(f"{name}: {len(history.events)} events")


@contextlib.asynccontextmanager
async def _dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server (the test server has no visibility queries, which the check needs)."""
    from trader.search import ALL_KEYS

    dev = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        data_converter=DATA_CONVERTER,
        search_attributes=ALL_KEYS,
        ui=False,
    )
    try:
        yield dev
    finally:
        await dev.shutdown()


async def validator_moved_queue(env, tmp: Path) -> None:
    """Behind the "validator-own-queue" patch: a validator started as the previous release
    did (on the deployment's queue, no ``run_queue``) reports an unknown order, is given its
    own queue by a ``configure`` and continues as new there after its next check."""
    from tests.workflows.validator_rig import (
        move_to,
        own_queue_worker,
        place_unknown_order,
        validator,
    )
    from trader.observe.metrics import TraderMetrics

    async with _dev_server() as dev, bench(dev.client, tmp) as b:
        await place_unknown_order(b.exchange)
        async with validator(b, tmp, confirm_checks=1) as v:
            await v.wait_line("unknown_order")
            async with own_queue_worker(b, v, "validator-own", TraderMetrics("test")):
                await move_to(v, "validator-own")
            first = dev.client.get_workflow_handle(v.handle.id, run_id=v.first_run_id)
            history = await first.fetch_history()
    (OUT / "validator_moved_queue.json").write_text(history.to_json())
    print(f"validator_moved_queue: {len(history.events)} events")


async def validator_input_queue(env, tmp: Path) -> None:
    """Behind the "validator-own-queue" patch: a validator whose input already names its
    own queue (``run_queue``) while it runs on another reports an unknown order on its first
    check and continues as new on its own queue (no ``configure`` signal)."""
    from tests.workflows.validator_rig import own_queue_worker, place_unknown_order, validator
    from trader.observe.metrics import TraderMetrics

    async with _dev_server() as dev, bench(dev.client, tmp) as b:
        await place_unknown_order(b.exchange)
        async with validator(b, tmp, confirm_checks=1, run_queue="validator-own") as v:
            async with own_queue_worker(b, v, "validator-own", TraderMetrics("test")):
                for _ in range(600):
                    if (await v.handle.describe()).task_queue == "validator-own":
                        break
                    await asyncio.sleep(0.1)
            first = dev.client.get_workflow_handle(v.handle.id, run_id=v.first_run_id)
            history = await first.fetch_history()
    (OUT / "validator_input_queue.json").write_text(history.to_json())
    print(f"validator_input_queue: {len(history.events)} events")


async def validator_reported(env, tmp: Path) -> None:
    """Three checks, the unknown order reported (a notify in the background), then
    continue-as-new."""
    await _validator_run(tmp, "validator_reported", down_checks=0)


async def validator_check_failed(env, tmp: Path) -> None:
    """The first check failed (skipped), the next two report the unknown order."""
    await _validator_run(tmp, "validator_check_failed", down_checks=1)


async def validator_blind(env, tmp: Path) -> None:
    """Three checks failed (one notification that the validator is blind), the next two
    report the unknown order."""
    await _validator_run(tmp, "validator_blind", down_checks=3, checks_per_run=5)


async def _heartbeated(b: Bench, h: WorkflowHandle[Any, Any], ok: Any) -> None:
    for _ in range(300):
        seen = await watch_live(b.client, h.id)
        if seen is not None and ok(seen):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the watch never heartbeated that")


async def watch_handback(env, tmp: Path) -> None:
    """Behind the "watch-handback" patch: a pause in IDLE and a reconcile request in
    POSITION cancel the watch, which hands its anchor and trailing stop back; then a
    take profit and a stop."""
    async with bench(env.client, tmp) as b:
        h = await b.start(watch_checkpoint_seconds=600)
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "102")
        await _heartbeated(b, h, lambda seen: seen.anchor == D(102))
        await h.signal("pause_entries")
        await b.wait_for(h, lambda s: s.entry_watch.anchor == D(102), what="anchor kept")
        await h.signal("resume_entries")
        b.set_price("BTC/USDT", "99.90")
        await b.wait_phase(h, Phase.POSITION)
        b.set_price("BTC/USDT", "101.50")
        await _heartbeated(b, h, lambda seen: seen.trailing > 0)
        await h.signal("reconcile", c.ReconcileRequest(reason="recording"))
        await b.wait_for(h, lambda s: s.trade.exits.trailing.trigger > 0, what="trailing stop kept")
        b.set_price("BTC/USDT", "103.00")  # take profit
        await b.wait_phase(h, Phase.COOLDOWN)
        await _finish(b, h, "watch_handback")


RECORDINGS = {
    "lifecycle_take_profit": lifecycle,
    "partial_sell_ladder": partial_sells,
    "error_recovery": error_recovery,
    "lifecycle_take_profit_memo": lifecycle_take_profit_memo,
    "reality_shortfall": reality_shortfall,
    "reality_inventory": reality_inventory,
    "slot_retry_take_profit": slot_retry,
    "notify_drain_given_up": notify_drain,
    "portfolio_late_requests": portfolio_late_requests,
    "slot_wait_take_profit": slot_wait,
    "slot_wait_stopped": slot_wait_stopped,
    "error_window_from_entry": error_window,
    "validator_reported": validator_reported,
    "validator_check_failed": validator_check_failed,
    "validator_blind": validator_blind,
    "validator_moved_queue": validator_moved_queue,
    "validator_input_queue": validator_input_queue,
    "watch_handback": watch_handback,
    "slot_local_take_profit": slot_local,
    "slot_local_stopped": slot_local_stopped,
}


async def main(names: list[str], *, force: bool) -> None:
    todo = [n for n in names or RECORDINGS if force or not (OUT / f"{n}.json").exists()]
    if not todo:
        print("every history is recorded already (use NAME --force to re-record one)")
        return
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
        data_converter=DATA_CONVERTER,
    )
    await ensure_search_attributes(env.client)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in todo:
                (Path(tmp) / name).mkdir()
                await RECORDINGS[name](env, Path(tmp) / name)
    finally:
        await env.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"one of {', '.join(RECORDINGS)} (default: the missing ones)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    args = parser.parse_args()
    if unknown := set(args.names) - set(RECORDINGS):
        parser.error(f"unknown history {', '.join(sorted(unknown))}")
    asyncio.run(main(args.names, force=args.force))
