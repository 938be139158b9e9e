"""Slot activity: ask the Portfolio workflow for a trade slot (MAX_TRADES is global).

Workflows cannot send Updates to other workflows, so this activity does it, through the
worker's ``SlotBroker``: concurrent requests go out together as one Update. The grant is
idempotent on the decision id, so a retried activity is granted the same slot.

An attempt waits only until shortly before its own deadline, and its request carries that
instant (``expires_at``): the request leaves this worker's queue when the attempt gives up,
and the Portfolio never grants it later, when the next attempt may already have been
answered elsewhere (docs/architecture.md, "Late slot requests").
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateStage
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.service import RPCError

from activities.slot_broker import SlotBroker
from trader import contracts as c

SLOT_WAIT_EXPIRED = "SlotWaitExpired"
SLOT_LOCAL_BUSY = "SlotLocalBusy"
LOCAL_MAX_ASKING = 10
"""A local attempt goes to the slot queue instead while this many requests to the same
Portfolio wait in this worker."""
_MARGIN = timedelta(seconds=1)
"""An answer read before the attempt's deadline less this reaches the server in time."""


def _attempt_end(info: activity.Info) -> datetime | None:
    """When this attempt stops waiting: its start-to-close deadline less ``_MARGIN``."""
    if info.start_to_close_timeout is None:
        return None
    return info.started_time + info.start_to_close_timeout - _MARGIN


class PortfolioActivities:
    """``coalesce=False`` sends one ``acquire`` Update per request, as before the broker
    (bench/slots.py measures both)."""

    def __init__(self, client: Client, *, task_queue: str, coalesce: bool = True) -> None:
        self.client = client
        self.task_queue = task_queue
        self.broker = SlotBroker(client, task_queue=task_queue) if coalesce else None

    @activity.defn(name=c.ACQUIRE_SLOT)
    async def acquire_slot(self, inp: c.AcquireSlotInput) -> c.SlotGrant:
        info = activity.info()
        if info.is_local:
            return await self._acquire_locally(inp, info)
        end = _attempt_end(info)
        if end is not None:
            inp = inp.model_copy(
                update={"request": inp.request.model_copy(update={"expires_at": end.timestamp()})}
            )
        wait = None if end is None else max((end - datetime.now(UTC)).total_seconds(), 0)
        # Retryable: the next attempt asks again (the grant is idempotent).
        return await self._answer(inp, wait, within="this attempt")

    async def _answer(
        self, inp: c.AcquireSlotInput, wait: float | None, *, within: str
    ) -> c.SlotGrant:
        """The Portfolio's answer within ``wait`` seconds, else SlotWaitExpired."""
        try:
            if self.broker is not None:
                grant = await self.broker.acquire(
                    inp.portfolio_id, inp.max_trades, inp.request, timeout=wait
                )
            else:
                grant = await asyncio.wait_for(self._acquire_one(inp), wait)
        except TimeoutError:
            grant = None
        if grant is None or grant.expired:
            # BENIGN: the designed way to a retry or the slow path, not an error (temporalio
            # logs it at DEBUG; a plain failure is a WARNING with a traceback every time).
            raise ApplicationError(
                f"no answer from the Portfolio within {within}",
                type=SLOT_WAIT_EXPIRED,
                category=ApplicationErrorCategory.BENIGN,
            )
        return grant

    async def _acquire_locally(self, inp: c.AcquireSlotInput, info: activity.Info) -> c.SlotGrant:
        """The slot-local patch's attempt, inside the deciding workflow task: that task (and
        the worker's workflow-task slot it holds) waits for it, so it runs only while this
        worker's broker is calm, and waits its attempt less ``SLOT_LOCAL_MARGIN``. Its request's
        ``expires_at`` was set by the workflow (on the server's clock, as the Portfolio's)."""
        if self.broker is None or self.broker.asking(inp.portfolio_id) >= LOCAL_MAX_ASKING:
            # A burst: hundreds of deciding tasks held open would starve the Portfolio's own
            # workflow tasks on this worker. The slot queue's activity waits on the server.
            raise ApplicationError(
                "this worker's slot requests are busy: asking on the slot queue",
                type=SLOT_LOCAL_BUSY,
                non_retryable=True,
                category=ApplicationErrorCategory.BENIGN,
            )
        attempt = info.start_to_close_timeout or timedelta(0)
        wait = max((attempt - c.SLOT_LOCAL_MARGIN).total_seconds(), 0.0)
        # (One attempt: the workflow falls back to the slot queue, not to a retry.)
        return await self._answer(inp, wait, within="the local attempt")

    async def _acquire_one(self, inp: c.AcquireSlotInput) -> c.SlotGrant:
        # Start the Portfolio if nobody has yet (idempotent: the running one is reused).
        handle = await self.client.start_workflow(
            "Portfolio",
            c.PortfolioInput(max_trades=inp.max_trades),
            id=inp.portfolio_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        update = await handle.start_update(
            "acquire",
            inp.request,
            wait_for_stage=WorkflowUpdateStage.COMPLETED,
            result_type=c.SlotGrant,
        )
        # Named by string (activities sit below workflows/: no Portfolio.acquire to pass), so
        # the SDK types the result Any; result_type has the converter build a SlotGrant.
        grant: c.SlotGrant = await update.result()
        return grant


log = logging.getLogger(__name__)


class SlotBoard:
    """How many trade slots are free, per Portfolio, for the watches waiting for one.

    One query (no history event) per Portfolio per ``ttl_s``, whatever the number of waiting
    watches in this worker: they share the answer.
    """

    def __init__(self, client: Client, *, ttl_s: float = 1.0) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, int]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def free(self, portfolio_id: str, *, fresh: bool = False) -> int:
        """Free slots; ``fresh`` skips the cache (a watch's first look after NO_SLOT)."""
        lock = self._locks.setdefault(portfolio_id, asyncio.Lock())
        async with lock:
            cached = self._cache.get(portfolio_id)
            if not fresh and cached is not None and time.monotonic() - cached[0] < self.ttl_s:
                return cached[1]
            free: int
            try:
                # By name, like acquire_slot's update: result_type makes the Any an int.
                free = await self.client.get_workflow_handle(portfolio_id).query(
                    "free_slots", result_type=int
                )
            except (RPCError, WorkflowQueryFailedError) as exc:
                # Unknown means wait: firing on every tick would cycle IDLE <-> ENTRY_EVAL
                # against a full Portfolio. The next look (a second later) asks again.
                log.warning("free_slots of %s unavailable: %s", portfolio_id, exc)
                free = 0
            self._cache[portfolio_id] = (time.monotonic(), free)
            return free
