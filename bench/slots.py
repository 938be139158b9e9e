"""Slot grant latency under a burst and a steady stream of requests (issue 13, item 1).

    python -m bench.slots --requests 1000                    # 1,000 at once, the broker
    python -m bench.slots --requests 1000 --per-request      # one Update each (before)
    python -m bench.slots --requests 1000 --rate 100         # a steady 100 requests/s
    python -m bench.slots --requests 1000 --slot-queue main  # acquire_slot on the main queue
    python -m bench.slots --requests 1000 --slot-activities 2000  # no bound on slot requests
    python -m bench.slots --requests 1000 --local-first      # SymbolTrader's since slot-local

A real dev server (in memory) and one worker in this process with the production worker
settings (trader/runtime/worker.py): a main worker with the SDK's default activity slots
running the Portfolio and one ``SlotClient`` workflow per request (ENTRY_EVAL's acquire
without a market, tests/workflows/slot_client.py), and a slot worker (MAX_SLOT_REQUESTS
activity slots) where the real ``acquire_slot`` runs since the slot-wait patch
(``--slot-queue main``: on the main queue, as before). Latency is from scheduling the
activity to its result (all retries included), on the client workflows' clock. During
the burst, ``--probes`` order stand-ins (one short activity each on the main queue, as
place_order) measure how long an order waits for an activity slot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from activities.portfolio import PortfolioActivities
from bench.common import dev_server, latency_summary
from tests.workflows.slot_client import PROBE_ORDER, ClientResult, OrderProbe, SlotClient
from trader import contracts as c
from trader.runtime.worker import MAX_SLOT_REQUESTS
from workflows.portfolio import Portfolio


@activity.defn(name=PROBE_ORDER)
async def probe_order() -> None:
    """An order's stand-in: the wait for an activity slot is what it measures."""


async def _history_events(client: Client, portfolio_id: str) -> tuple[int, int]:
    """Events and runs of the Portfolio over its continue-as-new chain."""
    events = runs = 0
    run_id: str | None = (await client.get_workflow_handle(portfolio_id).describe()).run_id
    while run_id:
        history = await client.get_workflow_handle(portfolio_id, run_id=run_id).fetch_history()
        events, runs = events + len(history.events), runs + 1
        first = history.events[0]
        assert first.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
        run_id = first.workflow_execution_started_event_attributes.continued_execution_run_id
    return events, runs


async def main(
    requests: int,
    *,
    per_request: bool,
    rate: float | None,
    max_trades: int,
    timeout_s: float,
    in_flight: int = 2,
    slot_queue: str = "own",
    slot_activities: int = MAX_SLOT_REQUESTS,
    probes: int = 20,
    local_first: bool = False,
) -> dict[str, object]:
    errors: Counter[str] = Counter()
    attempts = 0
    async with dev_server() as env:
        client = env.client
        run = uuid.uuid4().hex[:8]
        tq, pid = f"slots-{run}", f"portfolio:slots-{run}"
        sq = c.slot_task_queue(f"watch-{run}") if slot_queue == "own" else tq
        acts = PortfolioActivities(client, task_queue=tq, coalesce=not per_request)
        if acts.broker is not None:
            acts.broker.max_in_flight = in_flight

        @activity.defn(name=c.ACQUIRE_SLOT)
        async def counted(inp: c.AcquireSlotInput) -> c.SlotGrant:
            nonlocal attempts
            attempts += 1
            try:
                return await acts.acquire_slot(inp)
            except Exception as exc:  # counted, then retried by Temporal as without the bench
                errors[f"{type(exc).__name__}: {str(exc)[:90]}"] += 1
                raise

        main_worker = Worker(
            client,
            task_queue=tq,
            workflows=[Portfolio, SlotClient, OrderProbe],
            activities=[counted, probe_order],
            max_cached_workflows=max(1000, 2 * requests),  # as trader/runtime/worker.py
        )
        slot_worker = Worker(
            client,
            task_queue=c.slot_task_queue(f"watch-{run}"),
            activities=[counted],
            max_concurrent_activities=slot_activities,
        )
        async with main_worker, slot_worker:
            gate = asyncio.Semaphore(64)  # the launcher's concurrency (LAUNCH_CONCURRENCY)

            async def one(i: int) -> ClientResult:
                if rate:
                    await asyncio.sleep(i / rate)
                req = c.SlotRequest(decision_id=f"{pid}:d{i}", symbol=f"S{i:04d}/USDT")
                async with gate:
                    handle = await client.start_workflow(
                        SlotClient.run,
                        args=[
                            c.AcquireSlotInput(
                                portfolio_id=pid, max_trades=max_trades, request=req
                            ),
                            sq,
                            local_first,
                        ],
                        id=f"{pid}:client:{i}",
                        task_queue=tq,
                    )
                return await handle.result()

            async def probe(i: int) -> float:
                # Orders placed while the slot requests are in flight.
                await asyncio.sleep(0.5 + i * 0.25)
                wait: float = await client.execute_workflow(
                    OrderProbe.run, id=f"{pid}:probe:{i}", task_queue=tq
                )
                return wait

            t0 = time.perf_counter()
            tasks = [asyncio.create_task(one(i)) for i in range(requests)]
            probing = asyncio.gather(*(probe(i) for i in range(probes)))
            done, late = await asyncio.wait(tasks, timeout=timeout_s)
            try:  # the probes run beside the requests: as long again is more than enough
                order_waits = await asyncio.wait_for(probing, timeout_s)
            except TimeoutError:
                raise TimeoutError(
                    f"order probes not done {timeout_s} s after the requests"
                ) from None
            wall = time.perf_counter() - t0
            for task in late:  # the old design can thrash for many minutes: stop it
                task.cancel()
            results = [t.result() for t in done if t.exception() is None]
            slots = await client.get_workflow_handle(pid).query(Portfolio.current_slots)
            events, runs = await _history_events(client, pid)
    granted = sum(r.grant.granted for r in results)
    if not late:
        assert granted == len(slots) == min(max_trades, requests), (granted, len(slots))
    summary = latency_summary([r.latency_s for r in results])
    updates = acts.broker.stats.updates if acts.broker else attempts
    return {
        "design": "per-request" if per_request else f"broker, {in_flight} in flight",
        "local_first": local_first,
        "answered_locally": sum(r.local for r in results),
        "slot_queue": slot_queue,
        "slot_activities": slot_activities if slot_queue == "own" else "main's 100",
        "requests": requests,
        "rate_per_s": rate or "burst",
        "answered": len(results),
        "unanswered_at_timeout": len(late),
        "granted": granted,
        "wall_s": round(wall, 2),
        "grant_p50_s": summary["latency_median_s"],
        "grant_p99_s": summary["latency_p99_s"],
        "grant_max_s": summary["latency_max_s"],
        "order_wait_p50_s": latency_summary(order_waits)["latency_median_s"],
        "order_wait_max_s": latency_summary(order_waits)["latency_max_s"],
        "activity_attempts": attempts,
        "updates_sent": updates,
        "portfolio_events": events,
        "portfolio_runs": runs,
        "failed_attempts": sum(errors.values()),
        "errors": dict(errors.most_common(4)),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--per-request", action="store_true", help="one Update per request")
    parser.add_argument("--rate", type=float, default=None, help="requests/s (default: burst)")
    parser.add_argument("--max-trades", type=int, default=100)
    parser.add_argument("--in-flight", type=int, default=2, help="the broker's Updates")
    parser.add_argument("--timeout", type=float, default=300, help="stop after (s)")
    parser.add_argument(
        "--slot-queue", choices=["own", "main"], default="own", help="where acquire_slot runs"
    )
    parser.add_argument(
        "--slot-activities", type=int, default=MAX_SLOT_REQUESTS, help="the slot worker's"
    )
    parser.add_argument("--probes", type=int, default=20, help="orders placed during it")
    parser.add_argument(
        "--local-first", action="store_true", help="a local attempt first (slot-local patch)"
    )
    args = parser.parse_args()
    out = asyncio.run(
        main(
            args.requests,
            per_request=args.per_request,
            rate=args.rate,
            max_trades=args.max_trades,
            timeout_s=args.timeout,
            in_flight=args.in_flight,
            slot_queue=args.slot_queue,
            slot_activities=args.slot_activities,
            local_first=args.local_first,
            probes=args.probes,
        )
    )
    print(json.dumps(out, indent=1))
