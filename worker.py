"""Run a durable-trader worker against the configured Temporal server.

    python worker.py [--config FILE]

Run as many as you like on one task queue: nothing assumes a single worker.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from trader.config import global_options, load_settings
from trader.core.errors import TraderError
from trader.runtime import both, hybrid
from trader.runtime.client import (
    connect,
    default_identity,
    ensure_search_attributes,
    sdk_metrics_runtime,
)
from trader.runtime.process import hard_exit
from trader.runtime.worker import run_worker


async def main(config: Path | None) -> int:
    settings = hybrid.fsm_settings(load_settings(config))  # a shadow polls its own queues
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    address = settings.temporal_address or f"127.0.0.1:{settings.temporal_port}"
    identity = default_identity()
    client = await connect(
        address,
        settings.temporal_namespace,
        identity=identity,
        runtime=sdk_metrics_runtime(settings, identity),
    )
    await ensure_search_attributes(client)
    if hybrid.is_both(settings):  # never adopt the other role's workflows (as starter.py)
        await both.refuse_other_role(client, settings, simulated=await both.fsm_simulated(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(settings, client, stop=stop)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="worker.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[global_options()],
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    try:
        hard_exit(asyncio.run(main(parse_args().config)))
    except TraderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        hard_exit(2)
