"""Record the committed replay histories from real runs on the time-skipping server.

    python -m tests.histories.record

Re-record only when a workflow change is *meant* to be incompatible (and then keep the old
files for as long as old histories may still run).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from decimal import Decimal as D
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from tests.workflows.harness import bench
from trader import contracts as c
from trader.core.phases import Phase
from trader.exchange.paper import PaperFaults
from trader.runtime.client import ensure_search_attributes
from trader.runtime.converter import DATA_CONVERTER

OUT = Path(__file__).parent


async def _finish(b, h, name: str) -> None:
    await h.signal("shutdown", c.ShutdownRequest(close_position=True))
    await h.result()
    history = await h.fetch_history()
    (OUT / f"{name}.json").write_text(history.to_json())
    print(f"{name}: {len(history.events)} events")


async def lifecycle(env, tmp: Path) -> None:
    async with bench(env.client, tmp) as b:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.POSITION)
        b.set_price("BTC/USDT", "101.50")
        await b.wait_phase(h, Phase.COOLDOWN)
        await env.sleep(15 * 60 + 1)
        await b.wait_phase(h, Phase.IDLE)
        await _finish(b, h, "lifecycle_take_profit")


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
        await env.sleep(11)
        await b.wait_phase(h, Phase.COOLDOWN, timeout=30)
        await _finish(b, h, "error_recovery")


async def main() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
        data_converter=DATA_CONVERTER)
    await ensure_search_attributes(env.client)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for record in (lifecycle, partial_sells, error_recovery):
                (Path(tmp) / record.__name__).mkdir()
                await record(env, Path(tmp) / record.__name__)
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
