"""A scene shared by the observability tests: real SymbolTrader workflows on the dev
server (real visibility), one in ERROR, one holding a position, one idle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal as D

import pytest
from temporalio.client import Client

from tests.workflows.harness import Bench, TraderHandle, bench
from trader.core.phases import Phase
from trader.exchange.paper import PaperFaults
from trader.observe.status_table import StatusRow, status_rows, traders_query

HELD_PRICE = "98.50"  # inside TP/SL of a 97.90 entry: only a checkpoint reports it


@dataclass
class Scene:
    bench: Bench
    failing: TraderHandle
    holder: TraderHandle
    idle: TraderHandle

    @property
    def query(self) -> str:
        return traders_query(self.bench.task_queue)


@pytest.fixture(scope="package")
async def scene(dev_env, tmp_path_factory) -> AsyncIterator[Scene]:
    async with bench(dev_env.client, tmp_path_factory.mktemp("status")) as b:
        failing = await b.start("ETH/USDT", fsm_backoff_base_seconds=600)  # stays in ERROR
        holder = await b.start("BTC/USDT")
        await b.wait_phase(failing, Phase.IDLE)
        await b.wait_phase(holder, Phase.IDLE)
        b.set_price("ETH/USDT", "1950")
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(failing, Phase.POSITION)
        await b.wait_phase(holder, Phase.POSITION)
        b.exchange.faults = PaperFaults(reject_creates_with="InsufficientFunds")
        b.set_price("ETH/USDT", "2100")  # take profit; the sell is refused: ERROR
        await b.wait_phase(failing, Phase.ERROR)
        b.exchange.faults = None
        idle = await b.start("BTC/USDT")
        await b.wait_phase(idle, Phase.IDLE)
        b.set_price("BTC/USDT", HELD_PRICE)
        await b.wait_for(
            holder,
            lambda s: s.current_price == D(HELD_PRICE),
            timeout=30,
            what="a POSITION checkpoint",
        )
        yield Scene(b, failing, holder, idle)


async def visible_rows(scene: Scene, client: Client | None = None) -> dict[str, StatusRow]:
    """Rows by workflow id, once visibility shows the scene as the workflows report it."""
    client = client or scene.bench.client
    deadline = time.monotonic() + 30
    while True:
        rows = {r.workflow_id: r for r in await status_rows(client, scene.query)}
        held, failed = rows.get(scene.holder.id), rows.get(scene.failing.id)
        if (
            held
            and held.memo
            and held.memo.price == D(HELD_PRICE)
            and failed
            and failed.phase == "error"
            and scene.idle.id in rows
        ):
            return rows
        assert time.monotonic() < deadline, f"visibility never caught up: {rows}"
        await asyncio.sleep(0.2)
