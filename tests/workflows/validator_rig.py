"""A HybridValidator beside a SymbolTrader bench: the real workflow and activity on the
bench's Temporal server, reading the bench's workflows, paper exchange and ledger."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from activities.notify import NotifyActivities
from activities.validator import ValidatorActivities, divergence_log_path
from tests.workflows.harness import Bench
from trader import contracts as c
from trader.core.divergence import Tolerances
from trader.core.errors import BadSymbol, RetryableExchangeError
from trader.core.market import Balance, Order, OrderRequest, OrderSide, OrderType, TimeInForce
from trader.exchange.port import Exchange
from trader.ledger import LedgerStore
from trader.observe.metrics import TraderMetrics
from workflows.hybrid_validator import HybridValidator

UNKNOWN_ORDER_ID = "behind-the-bots-back"


class AccountDown:
    """The bench's exchange, with its account request failing (retryable) while ``down``:
    an exchange in maintenance, as the validator's activity meets it."""

    def __init__(self, inner: Exchange) -> None:
        self.inner = inner
        self.down = False
        self.failed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def fetch_balances(self, *, reconcile: bool = False) -> dict[str, Balance]:
        if self.down:
            self.failed += 1
            raise RetryableExchangeError("account endpoint in maintenance")
        return await self.inner.fetch_balances(reconcile=reconcile)


class Delisted:
    """The bench's exchange, where one symbol's open orders are refused (BadSymbol); it
    lists open orders per symbol only (no all-symbols listing)."""

    def __init__(self, inner: Exchange, symbol: str) -> None:
        self.inner, self.symbol = inner, symbol

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def fetch_all_open_orders(self) -> list[Order] | None:
        return None

    async def fetch_open_orders(self, symbol: str, *, reconcile: bool = False) -> list[Order]:
        if symbol == self.symbol:
            raise BadSymbol(f"{symbol} is delisted")
        return await self.inner.fetch_open_orders(symbol, reconcile=reconcile)


class Blinking:
    """The bench's exchange whose all-symbols listing misses every open order on the
    ``blind`` calls (1 = the first): a listing a moment behind, a divergence that blinks."""

    def __init__(self, inner: Exchange, blind: set[int]) -> None:
        self.inner, self.blind = inner, blind
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def fetch_all_open_orders(self) -> list[Order] | None:
        self.calls += 1
        listed = await self.inner.fetch_all_open_orders()
        return [] if self.calls in self.blind else listed


PREVIOUS_SHAPE_DROPS = {"tracker": ["absent"], "tolerances": ["clear_checks"]}
"""What this release added to the validator's input: the previous release's has neither."""


def previous_shape(inp: c.ValidatorInput) -> dict[str, Any]:
    """The input as the previous release wrote it (continue-as-new of a running validator)."""
    raw = inp.model_dump(mode="json")
    for key in PREVIOUS_SHAPE_DROPS["tracker"]:
        del raw["tracker"][key]
    for key in PREVIOUS_SHAPE_DROPS["tolerances"]:
        del raw["setup"]["tolerances"][key]
    return raw


class LedgerDown:
    """The bench's ledger with every read failing (the database unreachable)."""

    def __init__(self, inner: LedgerStore) -> None:
        self.inner = inner
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def trades(self, **_: Any) -> Any:
        self.reads += 1
        raise OSError("ledger unreachable")

    async def dust(self) -> Any:
        self.reads += 1
        raise OSError("ledger unreachable")


async def place_unknown_order(exchange: Exchange) -> None:
    """A resting BTC buy far below the market that no symbol placed (placed by hand)."""
    await exchange.create_order(
        OrderRequest(
            symbol="BTC/USDT",
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            amount=D("0.2"),
            price=D("50"),
            time_in_force=TimeInForce.GTC,
            client_order_id=UNKNOWN_ORDER_ID,
        )
    )


@dataclass
class ValidatorRig:
    handle: WorkflowHandle[HybridValidator, None]
    """On the workflow id (no run id): follows continue-as-new."""
    first_run_id: str
    metrics: TraderMetrics
    log: Path

    def lines(self, kind: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        rows = [json.loads(x) for x in self.log.read_text().splitlines()]
        return [r for r in rows if kind is None or r["kind"] == kind]

    def counted(self, kind: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "trader_divergences_total", {"kind": kind, "worker": "test"}
        )
        return value or 0.0

    def checks(self, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "trader_validator_checks_total", {"outcome": outcome, "worker": "test"}
        )
        return value or 0.0

    async def progress(self) -> c.ValidatorInput:
        return await self.handle.query(HybridValidator.progress)

    async def wait_checks(self, n: int, *, timeout: float = 60) -> c.ValidatorInput:
        """Until ``n`` checks are done (counted across continue-as-new)."""
        deadline = time.monotonic() + timeout
        while True:
            p = await self.progress()
            if p.check >= n:
                return p
            assert time.monotonic() < deadline, f"only {p.check} of {n} checks done"
            await asyncio.sleep(0.2)

    async def wait_line(self, kind: str, *, n: int = 1, timeout: float = 60) -> dict[str, Any]:
        """The ``n``-th report of ``kind`` (1: the first), once it is logged."""
        deadline = time.monotonic() + timeout
        while len(self.lines(kind)) < n:
            assert time.monotonic() < deadline, f"no {kind} divergence #{n}; log: {self.lines()}"
            await asyncio.sleep(0.2)
        return self.lines(kind)[n - 1]


def own_queue_worker(b: Bench, v: ValidatorRig, queue: str, metrics: TraderMetrics) -> Worker:
    """A worker of ``queue`` for the rig's validator (the same log, its own ``metrics``)."""
    acts = ValidatorActivities(
        b.client, b.exchange, b.ledger, divergence_log=v.log, metrics=metrics
    )
    return Worker(
        b.client,
        task_queue=queue,
        workflows=[HybridValidator],
        activities=[acts.validate, NotifyActivities(b.notifier).notify],
    )


async def move_to(v: ValidatorRig, queue: str) -> Any:
    """Give the running validator ``queue`` as its own (as a new starter's ``configure``
    does); returns its description once its current run is there."""
    setup = (await v.progress()).setup.model_copy(update={"run_queue": queue})
    await v.handle.signal(HybridValidator.configure, setup)
    for _ in range(600):
        desc = await v.handle.describe()
        if desc.task_queue == queue:
            return desc
        await asyncio.sleep(0.1)
    raise AssertionError(f"the validator is still on {desc.task_queue}, not {queue}")


@contextlib.asynccontextmanager
async def validator(
    b: Bench,
    tmp_path: Path,
    *,
    legacy_state: Path | None = None,
    interval_s: float = 1.0,
    confirm_checks: int = 2,
    checks_per_run: int = 100,
    notify: bool = True,
    exchange: Exchange | None = None,
    ledger: LedgerStore | None = None,
    task_queue: str | None = None,
    watchlist: tuple[str, ...] = ("BTC/USDT",),
    previous_input: bool = False,
    run_queue: str | None = None,
) -> AsyncIterator[ValidatorRig]:
    """``exchange``, ``ledger``: the validator's view of them (default the bench's);
    ``task_queue``: the deployment whose SymbolTraders it reads (default the bench's);
    ``previous_input``: started with the input shape of the previous release;
    ``run_queue``: its setup's own queue (default none: it stays where it is started)."""
    metrics = TraderMetrics("test")
    log = divergence_log_path(tmp_path)
    acts = ValidatorActivities(
        b.client,
        exchange or b.exchange,
        ledger or b.ledger,
        divergence_log=log,
        metrics=metrics,
    )
    queue = f"validator-{uuid.uuid4().hex[:8]}"
    setup = c.ValidatorSetup(
        exchange="paper",
        task_queue=task_queue or b.task_queue,
        watchlist=list(watchlist),
        interval_s=interval_s,
        legacy_state_path=str(legacy_state) if legacy_state else None,
        tolerances=Tolerances(confirm_checks=confirm_checks),
        checks_per_run=checks_per_run,
        notify=notify,
        run_queue=run_queue,
    )
    worker = Worker(
        b.client,
        task_queue=queue,
        workflows=[HybridValidator],
        activities=[acts.validate, NotifyActivities(b.notifier).notify],
    )
    async with worker:
        inp = c.ValidatorInput(setup=setup)
        first = await b.client.start_workflow(
            "HybridValidator",
            previous_shape(inp) if previous_input else inp,
            id=f"hybrid-validator:paper:{queue}",
            task_queue=queue,
        )
        handle = b.client.get_workflow_handle_for(HybridValidator.run, first.id)
        try:
            yield ValidatorRig(handle, first.result_run_id or "", metrics, log)
        finally:
            with contextlib.suppress(Exception):
                await handle.terminate("test over")
