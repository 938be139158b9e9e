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
    from trader.core.divergence import Divergence
    from trader.core.messages import format_divergence

CHECK_ATTEMPTS = 3
NOTIFY_ATTEMPT = timedelta(seconds=10)
NOTIFY_GIVE_UP = timedelta(hours=1)
NOTIFY_DRAIN = timedelta(seconds=60)
"""How long a run waits for its notifications before continuing as new (then given up)."""


@workflow.defn(name="HybridValidator")
class HybridValidator:
    @workflow.init
    def __init__(self, inp: c.ValidatorInput) -> None:
        self.setup = inp.setup
        self.since_ts = inp.since_ts
        self.check = inp.check
        self.tracker = inp.tracker
        self._notes: list[ActivityHandle[None]] = []

    @workflow.run
    async def run(self, inp: c.ValidatorInput) -> None:
        since = self.since_ts if self.since_ts is not None else workflow.now().timestamp()
        self.since_ts = since
        for _ in range(self.setup.checks_per_run):
            await self._check(since)
            await workflow.sleep(timedelta(seconds=self.setup.interval_s))
            if workflow.info().is_continue_as_new_suggested():
                break
        await self._drain()
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self.progress())

    async def _check(self, since: float) -> None:
        attempt = timedelta(seconds=max(30.0, self.setup.interval_s))
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
                schedule_to_close_timeout=attempt * CHECK_ATTEMPTS,
                retry_policy=RetryPolicy(maximum_attempts=CHECK_ATTEMPTS),
                summary=f"check {self.check}",
            )
        except ActivityError as err:
            # A check that cannot gather (server or exchange down) is skipped; the next
            # interval tries again. What it carried stays as it was.
            workflow.logger.warning("check %d failed: %s", self.check, err.cause or err)
        else:
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

    def _notify(self, d: Divergence) -> None:
        """In the background: a notification never holds up the next check. The key is in
        history before the activity runs (the check and the divergence's key), so a retry
        sends it once; a divergence reported again after it cleared has a new check."""
        text = format_divergence(kind=d.kind.value, detail=d.detail, values=d.values)
        self._notes.append(
            workflow.start_activity(
                c.NOTIFY,
                c.Notification(
                    symbol=d.symbol,
                    kind="divergence",
                    text=text,
                    key=f"{workflow.info().workflow_id}:c{self.check}:{d.key}",
                ),
                start_to_close_timeout=NOTIFY_ATTEMPT,
                schedule_to_close_timeout=NOTIFY_GIVE_UP,
                summary=f"notify divergence {d.kind.value}",
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
            setup=self.setup, since_ts=self.since_ts, check=self.check, tracker=self.tracker
        )
