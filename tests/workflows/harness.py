"""A SymbolTrader test bench: real workflows and real activities on a Temporal server,
over a real PaperExchange (SQLite) whose prices the test sets through a StaticFeed."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.exchange import ExchangeActivities
from activities.ledger import LedgerActivities
from activities.market import MarketActivities
from activities.notify import LogNotifier, Notifier, NotifyActivities
from activities.portfolio import PortfolioActivities, SlotBoard
from activities.watch_beat import WatchBeatActivities
from tests.event_history import decided_client_ids
from tests.markets import BTC_USDT, ETH_USDT
from trader import contracts as c
from trader import search as sa
from trader.core import ids
from trader.core.params import TraderParams
from trader.core.phases import Phase
from trader.core.state import CoinState
from trader.exchange.feed import StaticFeed
from trader.exchange.paper import PaperExchange, PaperFaults
from trader.hub import MarketHub
from trader.ledger import LedgerStore
from trader.observe.metrics import TraderMetrics
from trader.runtime.runner import workflow_runner
from workflows.base import SLOT_LOCAL_ATTEMPT
from workflows.portfolio import Portfolio
from workflows.symbol_trader import SymbolTrader

MARKETS = {m.symbol: m for m in (BTC_USDT, ETH_USDT)}

TraderHandle = WorkflowHandle[SymbolTrader, CoinState]
"""A handle on a SymbolTrader run: its queries and result are typed."""

# Small timeouts: activities run in real time on the test server (it skips time only while
# nothing runs), so the phases that wait on a running activity are kept short.
TEST_PARAMS = TraderParams(
    exchange="paper",
    trade_budget=D("100"),
    max_trades=3,
    drop_trigger_pct=D("2"),
    backfill_minutes=0,
    take_profit_pct=D("3"),
    stop_loss_pct=D("2"),
    trailing_activation_pct=D("1"),
    trailing_distance_pct=D("0.5"),
    buy_order_timeout_seconds=3,
    sell_order_timeout_seconds=3,
    watch_checkpoint_seconds=5,
    watch_heartbeat_timeout_seconds=5,
    order_activity_timeout_seconds=5,
    fsm_max_retries=3,
    fsm_backoff_base_seconds=10,
    # Above the 2.5 s lookup lag the tests give the local Binance server, and inside the
    # 5 s attempts with 1 s to create.
    order_consistency_window_seconds=3,
)
ORDER_WINDOW_S = TEST_PARAMS.order_consistency_window_seconds
"""The order activity's window (a worker setting; the workflow's ERROR reads the same one
from its parameters, as the worker derives both from one setting)."""


@dataclass
class Bench:
    client: Client
    feed: StaticFeed
    exchange: PaperExchange
    ledger: LedgerStore
    notifier: LogNotifier
    task_queue: str
    watch_queue: str
    portfolio_id: str
    handles: list[TraderHandle] = field(default_factory=list)
    hub: MarketHub | None = None

    def params(self, **overrides: Any) -> TraderParams:
        return TEST_PARAMS.model_copy(update=overrides)

    async def start(
        self,
        symbol: str = "BTC/USDT",
        *,
        state: CoinState | None = None,
        workflow_id: str | None = None,
        **overrides: Any,
    ) -> TraderHandle:
        """``workflow_id``: default a unique one; the production id (``ids.workflow_id_for``)
        for tests that drive the workflow as the operator commands do."""
        handle = await self.client.start_workflow(
            SymbolTrader.run,
            c.TraderInput(
                symbol=symbol,
                params=self.params(**overrides),
                portfolio_id=self.portfolio_id,
                watch_task_queue=self.watch_queue,
                state=state,
            ),
            id=workflow_id or f"{ids.workflow_id_for('paper', symbol)}:{uuid.uuid4().hex[:8]}",
            task_queue=self.task_queue,
            # As the launcher sets them: the status table and Web UI read these.
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.TRADING_SYMBOL, symbol),
                    SearchAttributePair(sa.TRADING_EXCHANGE, "paper"),
                ]
            ),
        )
        self.handles.append(handle)
        return handle

    def set_price(self, symbol: str, price: str) -> None:
        self.feed.set_price(symbol, D(price))

    async def state(self, handle: TraderHandle) -> CoinState:
        return await handle.query(SymbolTrader.state_query)

    async def wait_for(
        self,
        handle: TraderHandle,
        predicate: Callable[[CoinState], object],
        *,
        timeout: float = 20,
        what: str = "condition",
    ) -> CoinState:
        deadline = time.monotonic() + timeout
        while True:
            try:
                state = await self.state(handle)
            except RPCError as err:
                # A query can miss its deadline on a loaded machine (the workflow task that
                # answers it waits for a CPU): ask again until the wait's own deadline. The
                # server says "deadline exceeded"; the SDK's own 30 s call deadline says
                # "Timeout expired" (a new run's first query on the time-skipping server).
                missed = "deadline exceeded" in str(err) or "Timeout expired" in str(err)
                if not missed or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
                continue
            if predicate(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what}; state: phase="
                    f"{state.phase.value} note={state.note!r} "
                    f"history={[r.dst.value for r in state.phase_history]}"
                )
            await asyncio.sleep(0.1)

    async def wait_phase(
        self, handle: TraderHandle, phase: Phase, *, timeout: float = 20
    ) -> CoinState:
        return await self.wait_for(
            handle, lambda s: s.phase is phase, timeout=timeout, what=f"phase {phase.value}"
        )

    async def wait_idle_after(
        self, handle: TraderHandle, trades_closed: int, *, timeout: float = 20
    ) -> CoinState:
        """Until the symbol is back to IDLE with ``trades_closed`` trades closed."""
        return await self.wait_for(
            handle,
            lambda s: s.totals.trades_closed == trades_closed and s.phase is Phase.IDLE,
            what="back to idle",
            timeout=timeout,
        )


async def _stop(handle: WorkflowHandle[Any, Any]) -> None:
    """Stop a test workflow gracefully first: a workflow terminated while its activity runs
    leaves the time-skipping server's clock locked until that activity times out."""
    with contextlib.suppress(Exception):
        await handle.signal("shutdown", c.ShutdownRequest(close_position=False))
        await asyncio.wait_for(handle.result(), timeout=10)
    with contextlib.suppress(Exception):
        await handle.terminate("test over")


async def placed_client_ids(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The client order ids the workflow scheduled ``place_order`` with (its decisions), in
    order, read from its history."""
    return decided_client_ids(await handle.fetch_history())


RealActivities = dict[str, Callable[..., Any]]
"""The real main-queue activities by name (untyped: a stand-in casts what one returns)."""
StandIns = Callable[[RealActivities], Sequence[Callable[..., Any]]]


def _activity_name(fn: Callable[..., Any]) -> str:
    defn = activity._Definition.must_from_callable(fn)  # the name Temporal registers it by
    assert defn.name is not None
    return defn.name


def path_of(state: CoinState) -> list[str]:
    """The phases visited, in order, from the bounded phase history."""
    return [state.phase_history[0].src.value] + [r.dst.value for r in state.phase_history]


@contextlib.asynccontextmanager
async def bench(
    client: Client,
    tmp_path: Path,
    *,
    faults: PaperFaults | None = None,
    prices: dict[str, str] | None = None,
    poll_interval_s: float = 0.05,
    exchange: Any = None,
    feed: StaticFeed | None = None,
    metrics: TraderMetrics | None = None,
    order_window_s: float = ORDER_WINDOW_S,
    stand_ins: StandIns | None = None,
    notify_with: Notifier | None = None,
    ledger_target: str | Path | None = None,
    hub_options: dict[str, float] | None = None,
    worker_client: Client | None = None,
    sandboxed: bool = True,
) -> AsyncIterator[Bench]:
    """The bench over a PaperExchange, or over ``exchange`` (any ``Exchange``, e.g. the ccxt
    adapter talking to the local Binance server) whose prices ``feed`` sets.

    ``stand_ins``: given the real main-queue activities by name, the activities (each
    ``@activity.defn(name=...)`` with a real one's name) that replace them on the worker.
    ``notify_with``: the notify activity's notifier (e.g. Telegram on the local fake) instead
    of the bench's ``LogNotifier``. ``hub_options``: more ``MarketHub`` settings
    (``max_price_age_s``, ``stream_stall_s``). ``worker_client``: the main queue's worker
    (workflows, orders) connects through it, e.g. a ``TcpGate``'s; the watch worker and the
    test's own calls stay on ``client``."""
    feed = feed or StaticFeed(dict(MARKETS))
    for symbol, price in (prices or {"BTC/USDT": "100", "ETH/USDT": "2000"}).items():
        feed.set_price(symbol, D(price))
    if exchange is None:
        exchange = PaperExchange(
            feed,
            db_path=tmp_path / "paper.sqlite",
            quote_balances={"USDT": D("10000")},
            faults=faults,
        )
    hub = MarketHub(exchange, poll_interval_s=poll_interval_s, **(hub_options or {}))
    ledger = LedgerStore(ledger_target or tmp_path / "ledger.sqlite")
    notifier = LogNotifier()
    run = uuid.uuid4().hex[:8]
    tq, wq = f"tq-{run}", f"watch-{run}"
    ex = ExchangeActivities(exchange, hub, metrics=metrics, consistency_window_s=order_window_s)
    mk = MarketActivities(hub, exchange, metrics=metrics, slots=SlotBoard(client))
    lg = LedgerActivities(ledger, metrics=metrics)
    b = Bench(client, feed, exchange, ledger, notifier, tq, wq, f"portfolio:{run}", hub=hub)
    real = {
        _activity_name(fn): fn
        for fn in (
            ex.warmup,
            ex.place_order,
            ex.wait_order,
            ex.cancel_order,
            ex.reconcile,
            PortfolioActivities(client, task_queue=tq).acquire_slot,
            lg.record_trade,
            lg.record_dust,
            lg.record_inventory,
            NotifyActivities(notify_with or notifier).notify,
            WatchBeatActivities(client).last_watch_beat,
        )
    }
    # A stand-in takes the place of the real activity of its name (it may call that one).
    replaced = {_activity_name(fn): fn for fn in (stand_ins(dict(real)) if stand_ins else ())}
    unknown = replaced.keys() - real.keys()
    assert not unknown, f"no activity to stand in for: {sorted(unknown)}"
    acts = real | replaced
    main = Worker(
        worker_client or client,
        task_queue=tq,
        workflows=[SymbolTrader, Portfolio],
        activities=list(acts.values()),
        workflow_runner=workflow_runner(sandboxed),  # as trader/runtime/worker.py
    )
    watch = Worker(
        client,
        task_queue=wq,
        activities=[mk.watch_entry, mk.watch_exit],
        max_heartbeat_throttle_interval=c.LIVE_HEARTBEAT,  # as in trader/runtime/worker.py
    )
    # acquire_slot on main too, as in trader/runtime/worker.py (for runs before slot-wait).
    slots = Worker(client, task_queue=c.slot_task_queue(wq), activities=[acts[c.ACQUIRE_SLOT]])
    async with main, watch, slots:
        try:
            yield b
        finally:
            for handle in b.handles:
                await _stop(client.get_workflow_handle(handle.id))
            with contextlib.suppress(Exception):
                await client.get_workflow_handle(b.portfolio_id).terminate("test over")
            await hub.stop()
    await ledger.close()


def resumed_state(final: CoinState) -> CoinState:
    """A stopped run's final state, handed back to a new run as a restart would (without
    the shutdown request that stopped it)."""
    state = final.model_copy(deep=True)
    state.controls.shutdown_requested = False
    return state


class HangingAcquire:
    """acquire_slot behind a Portfolio that never answers (its worker stuck, a lost
    Update): it starts the Portfolio, then waits until ``release`` is set.

    Use it as ``async with bench(...) as b, hang:``: leaving it sets ``release`` on every
    path, before the bench's worker shuts down. The worker's shutdown waits for running
    activities, and a cancel can be lost for a local one (sdk-python #1837), so a test that
    failed with the activity still waiting would hang there for good. ``HOLD_S`` bounds the
    wait as well, should nothing release it."""

    HOLD_S = 300
    """Above the longest hold (the stuck-alert test's: seconds, ~300 s with each of its
    waits near its own limit), below the 8-minute hang guard."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.slot_queue_started = asyncio.Event()
        """Set once an attempt runs on the slot queue (the slot-local patch tries locally
        first: ``started`` is that attempt's)."""
        self.task_queues: list[str] = []

    def stand_in(self, real: RealActivities) -> list[Callable[..., Any]]:
        @activity.defn(name=c.ACQUIRE_SLOT)
        async def acquire_slot(inp: c.AcquireSlotInput) -> c.SlotGrant:
            queue = activity.info().task_queue
            self.task_queues.append(queue)
            await self.client.start_workflow(
                "Portfolio",
                c.PortfolioInput(max_trades=inp.max_trades),
                id=inp.portfolio_id,
                # The bench's main queue, from the slot queue's name.
                task_queue=queue.replace("watch-", "tq-").removesuffix("-slots"),
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
            self.started.set()
            if not activity.info().is_local:
                self.slot_queue_started.set()
            # Then fails: its workflow stopped waiting long ago. A local attempt is
            # cancelled by Core at its own timeout; one still here after that is an orphan
            # (its cancel lost) that only holds the worker's shutdown.
            local = activity.info().is_local
            hold = SLOT_LOCAL_ATTEMPT.total_seconds() + 5 if local else self.HOLD_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), hold)
            raise RuntimeError("the Portfolio never answered")

        return [acquire_slot]

    async def __aenter__(self) -> HangingAcquire:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
