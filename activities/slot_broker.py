"""Coalesce a worker's concurrent slot requests into one Update per Portfolio.

Temporal accepts at most 10 Updates in flight per workflow (and 2,000 per run). Sending one
per ``acquire_slot`` made 1,000 symbols triggering together fail with "limit on number of
concurrent in-flight updates has been reached" (docs/performance.md, slots). The broker of
a worker keeps at most ``max_in_flight`` ``acquire_many`` Updates in flight per Portfolio;
whatever arrives meanwhile waits and goes out as the next batch. So N workers send at most
``N * max_in_flight`` Updates at a time, whatever the number of symbols.

A batch that fails for any reason (the server's limits with more workers than that,
an Update aborted while the Portfolio continues-as-new, the Portfolio not started yet, the
server unreachable) is sent again with backoff, without the requests whose activity has
given up meanwhile. Resending is safe: the Portfolio grants idempotently on the decision id.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from trader import contracts as c

log = logging.getLogger(__name__)

_Waiter = tuple[c.SlotRequest, "asyncio.Future[c.SlotGrant]"]


@dataclass
class _Lane:
    """The requests waiting for one Portfolio, and its senders."""

    max_trades: int
    pending: list[_Waiter] = field(default_factory=list)
    senders: int = 0
    started: bool = False


@dataclass
class BrokerStats:
    """What the broker did (the bench reports it)."""

    updates: int = 0
    """``acquire_many`` Updates sent, failed ones included."""
    failures: int = 0
    """Of those, how many failed and were sent again."""
    requests: int = 0


class SlotBroker:
    """Per worker: one queue of slot requests per Portfolio, sent in batches."""

    def __init__(
        self,
        client: Client,
        *,
        task_queue: str,
        max_in_flight: int = 2,
        max_batch: int = 500,
        max_backoff_s: float = 2.0,
    ) -> None:
        self.client = client
        self.task_queue = task_queue
        self.max_in_flight = max_in_flight
        self.max_batch = max_batch  # ~100 bytes a request: far below the payload limits
        self.max_backoff_s = max_backoff_s
        self.stats = BrokerStats()
        self._lanes: dict[str, _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def acquire(self, portfolio_id: str, max_trades: int, req: c.SlotRequest) -> c.SlotGrant:
        """The Portfolio's answer to ``req`` (granted or all slots in use)."""
        lane = self._lanes.setdefault(portfolio_id, _Lane(max_trades))
        lane.max_trades = max_trades
        future: asyncio.Future[c.SlotGrant] = asyncio.get_running_loop().create_future()
        lane.pending.append((req, future))
        self.stats.requests += 1
        if lane.senders < self.max_in_flight:
            lane.senders += 1
            task = asyncio.create_task(self._drain(portfolio_id, lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self, portfolio_id: str, lane: _Lane) -> None:
        # Runs while requests wait; between the empty check and the decrement there is no
        # await, so a request appended meanwhile always finds a sender.
        try:
            while True:
                live = [w for w in lane.pending if not w[1].done()]
                batch, lane.pending = live[: self.max_batch], live[self.max_batch :]
                if not batch:
                    return
                await self._send(portfolio_id, lane, batch)
        finally:
            lane.senders -= 1

    async def _send(self, portfolio_id: str, lane: _Lane, batch: list[_Waiter]) -> None:
        delay = 0.05
        while batch := [w for w in batch if not w[1].done()]:
            try:
                result = await self._update(portfolio_id, lane, [req for req, _ in batch])
            except Exception as exc:
                self.stats.failures += 1
                if isinstance(exc, RPCError) and exc.status is RPCStatusCode.NOT_FOUND:
                    lane.started = False  # not started yet, or terminated: start it again
                log.warning("slot batch of %d for %s: %s; retrying", len(batch), portfolio_id, exc)
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, self.max_backoff_s)
                continue
            for (_, future), grant in zip(batch, result.grants, strict=True):
                if not future.done():  # its activity may have timed out meanwhile
                    future.set_result(grant)
            return

    async def _update(
        self, portfolio_id: str, lane: _Lane, requests: list[c.SlotRequest]
    ) -> c.SlotBatchResult:
        if not lane.started:
            # Start the Portfolio if nobody has yet (idempotent: the running one is reused).
            await self.client.start_workflow(
                "Portfolio",
                c.PortfolioInput(max_trades=lane.max_trades),
                id=portfolio_id,
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
            lane.started = True
        self.stats.updates += 1
        # No run id: after a continue-as-new the Update goes to the new run. By name (the
        # activities sit below workflows/), so result_type builds the model.
        result: c.SlotBatchResult = await self.client.get_workflow_handle(
            portfolio_id
        ).execute_update(
            "acquire_many", c.SlotBatch(requests=requests), result_type=c.SlotBatchResult
        )
        return result
