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
An Update unanswered after ``update_timeout_s`` counts as failed too (a Portfolio stuck or
unreachable must not hold the lane for good), and a request whose activity stops waiting
(its attempt's deadline) leaves the queue at once, so it is never sent late.

During a rolling deploy a worker of the previous release may run the Portfolio, which
knows no ``acquire_many``: the broker then asks with one ``acquire`` per request.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from trader import contracts as c

log = logging.getLogger(__name__)

_ONE_BY_ONE_S = 60.0
_Waiter = tuple[c.SlotRequest, "asyncio.Future[c.SlotGrant]"]


@dataclass
class _Lane:
    """The requests waiting for one Portfolio, and its senders."""

    max_trades: int
    pending: list[_Waiter] = field(default_factory=list)
    asking: int = 0
    """Requests whose ``acquire`` has not returned yet (unsent or in flight)."""
    senders: int = 0
    started: bool = False
    one_by_one_until: float = 0.0
    """Until then (monotonic s) ask with ``acquire``: the Portfolio had no ``acquire_many``
    (a worker of the previous release ran it)."""


@dataclass
class BrokerStats:
    """What the broker did (the bench reports it)."""

    updates: int = 0
    """``acquire_many`` Updates sent, failed ones included."""
    failures: int = 0
    """Of those, how many failed and were sent again."""
    requests: int = 0
    withdrawn: int = 0
    """Requests that left the queue unsent: their activity stopped waiting."""
    one_by_one: int = 0
    """Batches sent as single ``acquire`` Updates (a Portfolio without ``acquire_many``)."""


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
        update_timeout_s: float = 30.0,
    ) -> None:
        self.client = client
        self.task_queue = task_queue
        self.max_in_flight = max_in_flight
        self.max_batch = max_batch  # ~100 bytes a request: far below the payload limits
        self.max_backoff_s = max_backoff_s
        self.update_timeout_s = update_timeout_s
        self.stats = BrokerStats()
        self._lanes: dict[str, _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def acquire(
        self,
        portfolio_id: str,
        max_trades: int,
        req: c.SlotRequest,
        *,
        timeout: float | None = None,
    ) -> c.SlotGrant:
        """The Portfolio's answer to ``req`` (granted or all slots in use).

        Raises TimeoutError after ``timeout`` seconds, the request withdrawn if unsent."""
        lane = self._lanes.setdefault(portfolio_id, _Lane(max_trades))
        lane.max_trades = max_trades
        future: asyncio.Future[c.SlotGrant] = asyncio.get_running_loop().create_future()
        waiter = (req, future)
        lane.pending.append(waiter)
        lane.asking += 1
        self.stats.requests += 1
        if lane.senders < self.max_in_flight:
            lane.senders += 1
            task = asyncio.create_task(self._drain(portfolio_id, lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            lane.asking -= 1
            if waiter in lane.pending:  # given up (timeout, cancelled) before it was sent
                lane.pending.remove(waiter)
                self.stats.withdrawn += 1

    def asking(self, portfolio_id: str) -> int:
        """How many requests to this Portfolio wait for their answer in this worker."""
        lane = self._lanes.get(portfolio_id)
        return 0 if lane is None else lane.asking

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
                result = await asyncio.wait_for(
                    self._update(portfolio_id, lane, [req for req, _ in batch]),
                    self.update_timeout_s,
                )
                if len(result.grants) != len(batch):
                    raise ValueError(f"{len(result.grants)} answers to {len(batch)} requests")
            except Exception as exc:  # whatever it is, the batch is sent again
                self.stats.failures += 1
                if isinstance(exc, RPCError) and exc.status is RPCStatusCode.NOT_FOUND:
                    lane.started = False  # not started yet, or terminated: start it again
                log.warning(
                    "slot batch of %d for %s: %s; retrying",
                    len(batch),
                    portfolio_id,
                    f"{type(exc).__name__}: {exc}",
                )
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
        try:
            return await self._update_once(portfolio_id, lane, requests)
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            # The SDK reports a cancelled Update RPC as this error. When this task is being
            # cancelled (a timeout, or asyncio.run cancelling everything at a worker's
            # shutdown) it must end cancelled: as a failure nobody retrieves, asyncio.run
            # logged it at ERROR with a traceback at every such shutdown.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from None
            raise

    async def _update_once(
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
        handle = self.client.get_workflow_handle(portfolio_id)
        if time.monotonic() >= lane.one_by_one_until:
            try:
                result: c.SlotBatchResult = await handle.execute_update(
                    "acquire_many", c.SlotBatch(requests=requests), result_type=c.SlotBatchResult
                )
                return result
            except WorkflowUpdateFailedError as err:
                if not _unknown_handler(err):
                    raise
                log.warning("%s has no acquire_many (an older worker): one by one", portfolio_id)
                lane.one_by_one_until = time.monotonic() + _ONE_BY_ONE_S
        # The Portfolio of the previous release: one ``acquire`` per request, at most
        # max_in_flight at a time per worker, as before the broker; acquire_many is tried
        # again after _ONE_BY_ONE_S (the deploy is over by then, or it falls back again).
        self.stats.one_by_one += 1
        grants = []
        for req in requests:
            grant: c.SlotGrant = await handle.execute_update(
                "acquire", req, result_type=c.SlotGrant
            )
            grants.append(grant)
        return c.SlotBatchResult(grants=grants)


def _unknown_handler(err: WorkflowUpdateFailedError) -> bool:
    # The SDK rejects an Update it has no handler for with this message (temporalio 1.x).
    return "not found" in str(err.cause) and "acquire_many" in str(err.cause)
