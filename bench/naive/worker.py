"""A worker for the naive design only: ``python -m bench.naive.worker --config FILE``.

It polls ``<task_queue>-naive`` with the paper exchange the config describes."""

from __future__ import annotations

import argparse
import asyncio
import signal

from temporalio.worker import Worker

from bench.naive.activities import NaiveActivities
from bench.naive.workflow import NaiveTrader
from trader.config import global_options, load_settings
from trader.runtime.client import connect
from trader.runtime.exchange import build_exchange
from trader.runtime.process import hard_exit


def naive_queue(task_queue: str) -> str:
    return f"{task_queue}-naive"


async def main(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    address = settings.temporal_address or f"127.0.0.1:{settings.temporal_port}"
    client = await connect(address, settings.temporal_namespace)
    exchange = build_exchange(settings)
    acts = NaiveActivities(exchange)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    worker = Worker(
        client,
        task_queue=naive_queue(settings.task_queue),
        workflows=[NaiveTrader],
        activities=[acts.entry_tick, acts.exit_tick, acts.place],
        max_cached_workflows=max(1000, 2 * len(settings.watchlist)),
    )
    try:
        async with worker:
            await stop.wait()
    finally:
        await exchange.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, parents=[global_options()])
    hard_exit(asyncio.run(main(parser.parse_args())))
