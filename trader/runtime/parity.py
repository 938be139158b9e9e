"""The parity run: the same recorded candles through the legacy engine and the
SymbolTrader workflows, on one clock (docs/migration.md, "Parity: the clock").

Both engines run as they run live: the production market-data hub polling the exchange,
the production watches, timers and orders. What is replayed is the market: a
``PointFeed`` shows the fill model's price points one per ``point_ms`` of clock, and
cooldown and max hold are scaled to that clock (``scaled_params``). The FSM runs on the
Java time-skipping test server, which never skips here (a watch is always pending, and
nothing unlocks it): its clock is the wall clock plus a fixed offset, measured once, and
its timers fire to the millisecond (the dev server's fire at 1 s resolution). The legacy
engine runs on the wall clock. So both read the same point at the same instant, and a
decision, a deadline and the fill it leads to land in the same point as long as each
engine reacts within ``point_ms``: a slower reaction shows up as a different price or
point in the comparison, never as a silent pass. Max hold is the FSM's timer alone (its
exit watch leaves that rule to it: docs/migration.md, "Found").
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.exchange import ExchangeActivities
from activities.ledger import LedgerActivities
from activities.market import MarketActivities
from activities.notify import LogNotifier, NotifyActivities
from activities.portfolio import PortfolioActivities, SlotBoard
from trader import contracts as c
from trader.core import ids
from trader.core.market import Order, OrderSide
from trader.core.params import TraderParams
from trader.core.state import CoinState
from trader.exchange.paper import PaperExchange
from trader.hub import MarketHub
from trader.ledger import LedgerStore
from trader.legacy.engine import LegacyEngine
from trader.legacy.store import StateStore, state_path
from trader.observe.events import SINK, EventSink, PhaseEvent
from trader.parity.feed import PointFeed, scaled_params
from trader.runtime.client import ensure_search_attributes
from trader.runtime.converter import DATA_CONVERTER
from workflows.portfolio import Portfolio
from workflows.symbol_trader import SymbolTrader

POLL_S = 0.02
"""The hubs' poll interval: every point is seen ~``point_ms / POLL_S`` times."""
WARMUP_S = 15.0
"""Clock time before the first point: the workflows start and warm up (on point 0)."""


@dataclass(frozen=True)
class TradeRow:
    """One trade as an engine's exchange filled it; times are the data's (ms) of the point
    each order was priced at."""

    symbol: str
    entry_ms: int
    entry_price: Decimal
    amount: Decimal
    exit_ms: int | None
    exit_price: Decimal | None
    sold: Decimal
    reason: str


@dataclass
class Result:
    legacy: list[TradeRow]
    fsm: list[TradeRow]
    points: int
    wall_s: float
    ends: dict[str, str] = field(default_factory=dict)
    """Each side's last phase and note per symbol at the end ("fsm TRX/BTC": ...)."""


@dataclass
class _Reasons:
    by_symbol: dict[str, list[str]] = field(default_factory=dict)

    def __call__(self, ev: PhaseEvent) -> None:
        if ev.dst == "cooldown":  # POST_TRADE -> COOLDOWN: "<exit reason>: net ..."
            self.by_symbol.setdefault(ev.symbol, []).append(ev.reason.split(":")[0])


def parity_params(**overrides: object) -> TraderParams:
    """The backtest's real-pair parameters (docs/backtesting.md, Speed) for both engines."""
    base = TraderParams(
        exchange="paper",
        quote_budgets={"BTC": Decimal("0.002"), "ETH": Decimal("0.05")},
        drop_trigger_pct=Decimal(3),
        backfill_minutes=0,  # the backtest's warm-up: the first point sets the anchor
        max_trades=20,
    )
    return base.model_copy(update=overrides)


async def start_env() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
        data_converter=DATA_CONVERTER,
    )
    await ensure_search_attributes(env.client)
    return env


def real_files(directory: Path, symbols: list[str]) -> dict[str, tuple[Path, int]]:
    """The finest ``<BASE>_<QUOTE>-<n>m.csv`` of each symbol."""
    return {s: _file_of(directory, s) for s in symbols}


def _file_of(directory: Path, symbol: str) -> tuple[Path, int]:
    base, quote = symbol.split("/")
    best: tuple[Path, int] | None = None
    for path in directory.glob(f"{base}_{quote}-*m.csv"):
        step = int(path.stem.split("-")[1][:-1]) * 60_000
        if best is None or step < best[1]:
            best = (path, step)
    if best is None:
        raise FileNotFoundError(f"no {base}_{quote}-<n>m.csv in {directory}")
    return best


def _trades(orders: list[Order], reasons: dict[str, list[str]], feed: PointFeed) -> list[TradeRow]:
    rows: list[TradeRow] = []
    filled = sorted((o for o in orders if o.filled > 0), key=lambda o: (o.ts_ms, o.id))
    for symbol in sorted({o.symbol for o in filled}):
        why = list(reasons.get(symbol, []))
        buy: Order | None = None
        for o in (o for o in filled if o.symbol == symbol):
            if o.side is OrderSide.BUY:
                buy = o
            else:
                assert buy is not None, f"{symbol}: a sell before any buy"
                rows.append(_row(feed, buy, o, why.pop(0) if why else "?"))
                buy = None
        if buy is not None:
            rows.append(_row(feed, buy, None, "open at the end"))
    return rows


def _row(feed: PointFeed, buy: Order, sell: Order | None, reason: str) -> TradeRow:
    return TradeRow(
        symbol=buy.symbol,
        entry_ms=feed.replay_ms(buy.ts_ms),
        entry_price=buy.average or Decimal(0),
        amount=buy.filled,
        exit_ms=feed.replay_ms(sell.ts_ms) if sell else None,
        exit_price=sell.average if sell else None,
        sold=sell.filled if sell else Decimal(0),
        reason=reason,
    )


def _end(s: CoinState) -> str:
    return f"{s.phase.value} since {s.phase_since:.3f}: {s.note} {s.last_error or ''}".strip()


class ParityRun:
    def __init__(
        self,
        env: WorkflowEnvironment,
        files: dict[str, tuple[Path, int]],
        work: Path,
        *,
        params: TraderParams,
        start_ms: int,
        end_ms: int,
        point_ms: int,
    ) -> None:
        self.env, self.client, self.work = env, env.client, work
        self.symbols = sorted(files)
        steps = {step for _, step in files.values()}
        assert len(steps) == 1, "one candle length per run (the grid is 4 points a candle)"
        self.params = scaled_params(params, point_ms=point_ms, step_ms=steps.pop())
        self.feed = PointFeed(
            files, start_ms=start_ms, end_ms=end_ms, origin_ms=0, point_ms=point_ms
        )
        self.legacy_reasons, self.fsm_reasons = _Reasons(), _Reasons()

    async def run(self) -> Result:
        server_offset_ms = await self._server_offset_ms()
        origin = int((time.time() + WARMUP_S) * 1000)
        legacy_feed = self.feed.at_origin(origin)
        fsm_feed = self.feed.at_origin(origin + server_offset_ms)
        balances = {"BTC": Decimal(100), "ETH": Decimal(1000)}
        legacy_ex = PaperExchange(
            legacy_feed, db_path=self.work / "legacy-paper.sqlite", quote_balances=balances
        )
        fsm_ex = PaperExchange(
            fsm_feed,
            db_path=self.work / "fsm-paper.sqlite",
            quote_balances=balances,
            clock=lambda: int(time.time() * 1000) + server_offset_ms,
        )
        began = time.monotonic()
        self.ends: dict[str, str] = {}
        SINK.subscribe(self.fsm_reasons)
        try:
            async with self._fsm(fsm_ex), self._legacy(legacy_ex):
                await asyncio.sleep(max(legacy_feed.end_ms / 1000 - time.time(), 0) + 1)
        finally:
            SINK.unsubscribe(self.fsm_reasons)
        return Result(
            legacy=_trades(legacy_ex.all_orders(), self.legacy_reasons.by_symbol, legacy_feed),
            fsm=_trades(fsm_ex.all_orders(), self.fsm_reasons.by_symbol, fsm_feed),
            points=len(self.feed.grid),
            wall_s=time.monotonic() - began,
            ends=self.ends,
        )

    async def _server_offset_ms(self) -> int:
        """The test server's clock minus the wall clock (it never skips in this run)."""
        before = time.time()
        server = (await self.env.get_current_time()).timestamp()
        return int((server - (before + time.time()) / 2) * 1000)

    @contextlib.asynccontextmanager
    async def _legacy(self, exchange: PaperExchange) -> AsyncIterator[None]:
        store = StateStore(state_path(self.work / "legacy"))
        ledger = LedgerStore(self.work / "legacy-ledger.sqlite")
        await ledger.open_or_warn()  # migrated here, not beside the other store's (alembic's
        # migration context is process-global: two at once fail)
        hub = MarketHub(exchange, poll_interval_s=POLL_S)
        sink = EventSink()
        sink.subscribe(self.legacy_reasons)
        engine = LegacyEngine(
            params=self.params,
            watchlist=self.symbols,
            exchange=exchange,
            hub=hub,
            store=store,
            ledger=ledger,
            sink=sink,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(engine.run(stop))
        try:
            yield
        finally:
            for symbol, r in engine.runners.items():
                self.ends[f"legacy {symbol}"] = _end(r.s)
            stop.set()
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            await hub.stop()
            store.close()
            await ledger.close()

    @contextlib.asynccontextmanager
    async def _fsm(self, exchange: PaperExchange) -> AsyncIterator[None]:
        client: Client = self.client
        run = uuid.uuid4().hex[:8]
        tq, wq, portfolio = f"tq-{run}", f"watch-{run}", f"portfolio:{run}"
        hub = MarketHub(exchange, poll_interval_s=POLL_S)
        ledger = LedgerStore(self.work / "fsm-ledger.sqlite")
        await ledger.open_or_warn()
        ex = ExchangeActivities(exchange, hub, consistency_window_s=2)
        mk = MarketActivities(hub, exchange, slots=SlotBoard(client))
        lg = LedgerActivities(ledger)
        slots = PortfolioActivities(client, task_queue=tq)
        main = Worker(
            client,
            task_queue=tq,
            workflows=[SymbolTrader, Portfolio],
            activities=[
                ex.warmup,
                ex.place_order,
                ex.wait_order,
                ex.cancel_order,
                ex.reconcile,
                slots.acquire_slot,
                lg.record_trade,
                lg.record_dust,
                lg.record_inventory,
                NotifyActivities(LogNotifier()).notify,
            ],
        )
        watch = Worker(client, task_queue=wq, activities=[mk.watch_entry, mk.watch_exit])
        slot_worker = Worker(
            client, task_queue=c.slot_task_queue(wq), activities=[slots.acquire_slot]
        )
        handles = []
        async with main, watch, slot_worker:
            try:
                for symbol in self.symbols:
                    handles.append(
                        await client.start_workflow(
                            SymbolTrader.run,
                            c.TraderInput(
                                symbol=symbol,
                                params=self.params,
                                portfolio_id=portfolio,
                                watch_task_queue=wq,
                            ),
                            id=f"{ids.workflow_id_for('paper', symbol)}:{run}",
                            task_queue=tq,
                        )
                    )
                yield
            finally:
                for h in handles:
                    with contextlib.suppress(Exception):
                        state = await h.query(SymbolTrader.state_query)
                        self.ends[f"fsm {state.symbol}"] = _end(state)
                    with contextlib.suppress(Exception):
                        await h.terminate("parity run over")
                with contextlib.suppress(Exception):
                    await client.get_workflow_handle(portfolio).terminate("parity run over")
                await hub.stop()
        await ledger.close()


async def run_parity(
    env: WorkflowEnvironment,
    data_dir: Path,
    symbols: list[str],
    work: Path,
    *,
    start_ms: int,
    end_ms: int,
    point_ms: int = 1000,
    params: TraderParams | None = None,
) -> Result:
    """Replay ``[start_ms, end_ms)`` of the data through both engines; their trades."""
    return await ParityRun(
        env,
        real_files(data_dir, symbols),
        work,
        params=params or parity_params(),
        start_ms=start_ms,
        end_ms=end_ms,
        point_ms=point_ms,
    ).run()
