"""The HybridValidator workflow: every interval, one ``hybrid_validate`` activity compares
the FSM side, the legacy side and the exchange (docs/migration.md).

One workflow per deployment (``hybrid-validator:<exchange>:<task queue>``), long-running:
a check is one activity and one timer (11 history events). After ``checks_per_run``
checks (100: ~1,100 events, far below the 4,096 where Temporal suggests it), or sooner if
Temporal suggests it, it continues as new, carrying the divergences seen and reported, so
an identical divergence is never reported twice across runs. Why not a Schedule:
docs/architecture.md, "The hybrid validator".
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityHandle

with workflow.unsafe.imports_passed_through():
    from trader import contracts as c
    from trader.core.messages import format_checks_failed, format_divergence

CHECK_ATTEMPTS = 3
CHECK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_attempts=CHECK_ATTEMPTS
)
CHECK_ATTEMPT_MIN = timedelta(seconds=60)
CHECK_PER_SYMBOL = timedelta(seconds=2)
"""An attempt's budget grows with the watchlist: where the exchange lists open orders per
symbol only, they are one request each."""
CHECK_HEARTBEAT = timedelta(seconds=30)
"""The activity heartbeats between parts: one stuck part fails the attempt, not the budget."""
CHECKS_FAILED_NOTIFY = 3
"""Consecutive failed checks after which one notification says the validator is blind."""
NOTIFY_ATTEMPT = timedelta(seconds=10)
NOTIFY_GIVE_UP = timedelta(hours=1)
NOTIFY_DRAIN = timedelta(seconds=60)
"""How long a run waits for its notifications before continuing as new (then given up)."""
OWN_QUEUE_PATCH = "validator-own-queue"
"""A run on another queue than its setup's ``run_queue`` (started by the previous release on
the deployment's queue, the FSM shadow's in both mode) continues as new on it."""


@workflow.defn(name="HybridValidator")
class HybridValidator:
    @workflow.init
    def __init__(self, inp: c.ValidatorInput) -> None:
        self.setup = inp.setup
        self.since_ts = inp.since_ts
        self.check = inp.check
        self.tracker = inp.tracker
        self.failed_checks = inp.failed_checks
        self._notes: list[ActivityHandle[None]] = []

    @workflow.run
    async def run(self, inp: c.ValidatorInput) -> None:
        since = self.since_ts if self.since_ts is not None else workflow.now().timestamp()
        self.since_ts = since
        for _ in range(self.setup.checks_per_run):
            await self._check(since)
            await workflow.sleep(timedelta(seconds=self.setup.interval_s))
            if workflow.info().is_continue_as_new_suggested() or self._moving():
                break
        await self._drain()
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self.progress(), task_queue=self._moving() or None)

    def _moving(self) -> str | None:
        """The queue this run moves to, if its setup names another than its own. The setup
        (its ``run_queue``) is in history (input or ``configure`` signal), so the patch is
        asked at the same point on replay; a previous release's setup never asks it."""
        queue = self.setup.run_queue
        if queue is None or queue == workflow.info().task_queue:
            return None
        return queue if workflow.patched(OWN_QUEUE_PATCH) else None

    async def _check(self, since: float) -> None:
        attempt = max(
            CHECK_ATTEMPT_MIN,
            timedelta(seconds=self.setup.interval_s),
            CHECK_PER_SYMBOL * (len(self.setup.watchlist) + 1),
        )
        try:
            result = await workflow.execute_activity(
                c.VALIDATE,
                c.ValidateInput(
                    validator_id=workflow.info().workflow_id,
                    check=self.check,
                    setup=self.setup,
                    since_ts=since,
                    tracker=self.tracker,
                ),
                result_type=c.VALIDATE.result,
                start_to_close_timeout=attempt,
                heartbeat_timeout=CHECK_HEARTBEAT,
                schedule_to_close_timeout=_check_budget(attempt),
                retry_policy=CHECK_RETRY,
                summary=f"check {self.check}",
            )
        except ActivityError as err:
            # A check that cannot gather (server or exchange down) is skipped; the next
            # interval tries again. What it carried stays as it was.
            workflow.logger.warning("check %d failed: %s", self.check, err.cause or err)
            self.failed_checks += 1
            if self.failed_checks == CHECKS_FAILED_NOTIFY and self.setup.notify:
                self._send(
                    "validator",
                    format_checks_failed(failed=self.failed_checks, error=str(err.cause or err)),
                    "checks-failed",
                )
        else:
            self.failed_checks = 0
            self.tracker = result.tracker
            if self.setup.notify:
                for d in result.reported:
                    self._notify(d)
        self.check += 1
        self._reap()

    def _reap(self) -> None:
        for n in self._notes:
            if n.done() and not n.cancelled() and n.exception() is not None:
                workflow.logger.warning("divergence notification failed: %s", n.exception())
        self._notes = [n for n in self._notes if not n.done()]

    def _notify(self, d: c.ReportedDivergence) -> None:
        """In the background: a notification never holds up the next check. The key is in
        history before the activity runs (the check and the divergence's key), so a retry
        sends it once; a divergence reported again after it cleared has a new check."""
        text = format_divergence(kind=d.kind, detail=d.detail, values=d.values)
        self._send(d.symbol, text, d.key, summary=f"notify divergence {d.kind}")

    def _send(self, symbol: str, text: str, key: str, *, summary: str = "notify") -> None:
        self._notes.append(
            workflow.start_activity(
                c.NOTIFY,
                c.Notification(
                    symbol=symbol,
                    kind="divergence",
                    text=text,
                    key=f"{workflow.info().workflow_id}:c{self.check}:{key}",
                ),
                start_to_close_timeout=NOTIFY_ATTEMPT,
                schedule_to_close_timeout=NOTIFY_GIVE_UP,
                summary=summary,
            )
        )

    async def _drain(self) -> None:
        pending = [n for n in self._notes if not n.done()]
        if pending:
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(
                    lambda: all(n.done() for n in pending), timeout=NOTIFY_DRAIN
                )
        for n in pending:
            if not n.done():
                workflow.logger.warning("divergence notification not sent in time: given up")
                n.cancel()
        self._notes.clear()

    @workflow.signal(name="configure")
    def configure(self, setup: c.ValidatorSetup) -> None:
        """A new setup (the starter's, when settings changed), from the next check on."""
        self.setup = setup

    @workflow.query(name="progress")
    def progress(self) -> c.ValidatorInput:
        """Checks done and the divergences carried (what the next run starts from)."""
        return c.ValidatorInput(
            setup=self.setup,
            since_ts=self.since_ts,
            check=self.check,
            tracker=self.tracker,
            failed_checks=self.failed_checks,
        )


def _check_budget(attempt: timedelta) -> timedelta:
    """Every attempt, the backoffs between them, and one more attempt's worth of waiting
    for a worker: the third attempt is never cut short."""
    backoff = sum(
        (
            CHECK_RETRY.initial_interval * CHECK_RETRY.backoff_coefficient**i
            for i in range(CHECK_ATTEMPTS - 1)
        ),
        timedelta(),
    )
    return attempt * (CHECK_ATTEMPTS + 1) + backoff
