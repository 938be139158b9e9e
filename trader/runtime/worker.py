"""Build and run a worker: the exchange, the market-data hub, the ledger, the activities
and three Temporal workers (workflows + short activities; watch activities and slot
requests apart)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.exchange import ExchangeActivities
from activities.ledger import LedgerActivities
from activities.market import MarketActivities
from activities.notify import Notifier, NotifyActivities, build_notifier, close_notifier
from activities.portfolio import PortfolioActivities, SlotBoard
from activities.validator import ValidatorActivities, divergence_log_path
from activities.watch_beat import WatchBeatActivities
from trader.config import Settings
from trader.contracts import LIVE_HEARTBEAT, slot_task_queue
from trader.exchange.port import Exchange
from trader.hub import MarketHub
from trader.ledger import LedgerStore
from trader.observe.metrics import TraderMetrics
from trader.observe.status_live import live_status, status_console
from trader.observe.status_table import traders_query
from trader.runtime import hybrid
from trader.runtime.exchange import build_exchange, build_hub
from trader.runtime.observability import observability
from trader.runtime.reconcile import request_reconciles
from trader.runtime.runner import workflow_runner
from trader.runtime.validator import start_validator, validator_setup, validator_worker
from workflows.hybrid_validator import HybridValidator
from workflows.portfolio import Portfolio
from workflows.symbol_trader import SymbolTrader

log = logging.getLogger(__name__)

# A watch holds its slot for as long as a symbol idles or holds: give every symbol room.
MAX_WATCHES = 2000
# Slot requests one worker runs at once: as many as the broker answers within an attempt on
# a loaded machine (docs/performance.md, "Trade slots": 2,000 at once let most expire queued).
MAX_SLOT_REQUESTS = 100


async def run_worker(
    settings: Settings,
    client: Client,
    *,
    stop: asyncio.Event,
    market: tuple[Exchange, MarketHub] | None = None,
    alongside: TraderMetrics | None = None,
    served_by: TraderMetrics | None = None,
) -> None:
    """Run until ``stop`` is set; then finish in-flight tasks and close resources.

    ``market``: the exchange the activities trade on and the hub they watch, owned by the
    caller (``FSM_MODE=both`` shares the hub with the legacy engine); by default the
    worker builds its own (the shadow's account when the FSM is the shadow).
    ``alongside``: another engine's metrics served on this worker's endpoint;
    ``served_by``: the engine whose endpoint serves this worker's metrics instead.
    """
    async with observability(settings, client, alongside=alongside, served_by=served_by) as metrics:
        if market is not None:
            await _run(settings, client, stop, metrics, *market)
            return
        real = build_exchange(settings)
        hub = build_hub(settings, real)
        exchange = hybrid.side_exchange(settings, hybrid.FSM, real, hub=hub)
        try:
            side_hub = hybrid.side_hub(settings, hybrid.FSM, hub)
            await _run(settings, client, stop, metrics, exchange, side_hub)
        finally:
            await hub.stop()
            await hybrid.close_side(exchange, real)
            await real.close()


async def _run(
    settings: Settings,
    client: Client,
    stop: asyncio.Event,
    metrics: TraderMetrics | None,
    exchange: Exchange,
    hub: MarketHub,
) -> None:
    store = LedgerStore(settings.ledger_target)
    await store.open_or_warn()
    notifier: Notifier = (
        hybrid.shadow_notifier(hybrid.FSM)
        if hybrid.is_shadow(settings, hybrid.FSM)
        else build_notifier(settings)
    )
    ex_acts = ExchangeActivities(
        exchange,
        hub,
        metrics=metrics,
        consistency_window_s=settings.order_consistency_window_seconds,
    )
    market_acts = MarketActivities(hub, exchange, metrics=metrics, slots=SlotBoard(client))
    ledger = LedgerActivities(store, metrics=metrics)
    slots = PortfolioActivities(client, task_queue=settings.task_queue)
    # Annotated: the methods' signatures differ, and mypy joins them to a bare ``function``.
    activities: list[Callable[..., Awaitable[object]]] = [
        ex_acts.warmup,
        ex_acts.place_order,
        ex_acts.wait_order,
        ex_acts.cancel_order,
        ex_acts.reconcile,
        slots.acquire_slot,  # for runs from before the slot-wait patch
        ledger.record_trade,
        ledger.record_dust,
        ledger.record_inventory,
        NotifyActivities(notifier).notify,
        ValidatorActivities(
            client,
            hybrid.primary_exchange(settings, exchange),
            store,
            divergence_log=divergence_log_path(settings.data_dir),
            metrics=metrics,
        ).validate,
        WatchBeatActivities(client).last_watch_beat,  # a local activity
    ]
    main = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[SymbolTrader, Portfolio, HybridValidator],
        activities=activities,
        workflow_runner=workflow_runner(settings.workflow_sandbox),
        max_cached_workflows=max(1000, 2 * len(settings.watchlist)),
    )
    watch = Worker(
        client,
        task_queue=settings.watch_task_queue,
        activities=[market_acts.watch_entry, market_acts.watch_exit],
        max_concurrent_activities=MAX_WATCHES,
        max_heartbeat_throttle_interval=LIVE_HEARTBEAT,  # the live price's freshness
    )
    # Slot requests apart (since the slot-wait patch): a burst never holds the main queue's
    # activity slots that place_order, cancel_order and the ledger need, and the rest of
    # the burst waits on the server, where no attempt's timeout runs.
    slot_worker = Worker(
        client,
        task_queue=slot_task_queue(settings.watch_task_queue),
        activities=[slots.acquire_slot],
        max_concurrent_activities=MAX_SLOT_REQUESTS,
    )
    # The validator on its own queue; an FSM shadow's run leaves it to run_both, outside
    # the supervised shadow. (The main worker keeps it registered: a validator the previous
    # release started on the main queue moves from there at its next check.)
    shadow = hybrid.is_shadow(settings, hybrid.FSM)
    validating = (
        []
        if shadow
        else [
            validator_worker(
                settings, client, primary=exchange, ledger=store, notifier=notifier, metrics=metrics
            )
        ]
    )
    log.info(
        "worker polling %s and %s (workflow code %s)",
        settings.task_queue,
        settings.watch_task_queue,
        "in the sandbox" if settings.workflow_sandbox else "unsandboxed: WORKFLOW_SANDBOX=false",
    )
    table = _start_status_table(settings, client, stop) if settings.enable_rich_table else None
    try:
        async with main, watch, slot_worker, contextlib.AsyncExitStack() as stack:
            for worker in validating:
                await stack.enter_async_context(worker)
            # The symbols this worker may pick up check the account before trading on: a
            # worker starts after a crash, a deploy or a long outage.
            jobs = [_request_reconciles(client, settings.task_queue)]
            if not shadow:
                jobs.append(start_validator_logged(client, settings))
            await stack.enter_async_context(background(*jobs))
            await stop.wait()
    finally:
        if table is not None:
            await _stop_status_table(table, stopped=stop.is_set())
        await store.close()
        await close_notifier(notifier)


@contextlib.asynccontextmanager
async def background(*coros: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run ``coros`` as tasks for the block's life; cancelled (and awaited) however it ends:
    a worker that fails (an FSM shadow's, restarted in FSM_MODE=both) leaves none behind."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)


async def _request_reconciles(client: Client, task_queue: str) -> None:
    try:
        asked = await request_reconciles(
            client, task_queue, reason=f"worker {client.identity} started"
        )
    except Exception:  # a check that could not be asked for never stops the worker
        log.exception("could not ask the holding symbols to reconcile")
        return
    log.info("asked %d holding symbol(s) to reconcile with the exchange", len(asked))


async def start_validator_logged(client: Client, settings: Settings) -> None:
    """The deployment's HybridValidator runs whichever worker started first (idempotent)."""
    try:
        await start_validator(client, validator_setup(settings))
    except Exception:  # a validator that could not be started never stops the worker
        log.exception("could not start the hybrid validator")


def _start_status_table(
    settings: Settings, client: Client, stop: asyncio.Event
) -> asyncio.Task[int]:
    """ENABLE_RICH_TABLE: the live status table as a background task of this worker."""
    task = asyncio.create_task(
        live_status(
            client,
            traders_query(settings.task_queue),
            console=status_console(),
            refresh_hz=settings.rich_table_refresh_hz,
            show_idle=settings.rich_table_show_idle,
            stop=stop,
        ),
        name="status-table",
    )
    task.add_done_callback(_log_table_failure)
    return task


def _log_table_failure(task: asyncio.Task[int]) -> None:
    # When it fails, not at shutdown: until then the operator sees only a frozen table.
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("status table failed", exc_info=exc)


async def _stop_status_table(task: asyncio.Task[int], *, stopped: bool) -> None:
    # On a normal shutdown (``stopped``) the loop ends after its current frame; cancel it
    # if that frame hangs (server gone) or at once on an error exit. A failed table never
    # fails the worker.
    if stopped:
        await asyncio.wait({task}, timeout=5)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:  # already logged when it failed (_log_table_failure)
        pass
