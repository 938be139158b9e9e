"""Starting the HybridValidator (FSM_MODE=fsm and both), idempotently: one per exchange
account and deployment, whoever starts it first (the starter or any worker); and the
worker of its own task queue (``validator_task_queue``), which every worker that is not
an FSM shadow runs, and ``run_both`` beside a supervised FSM shadow (docs/migration.md)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.notify import Notifier, NotifyActivities
from activities.validator import ValidatorActivities, divergence_log_path
from trader import contracts as c
from trader.config import Settings
from trader.core import ids
from trader.exchange.port import Exchange
from trader.ledger import LedgerStore
from trader.legacy.store import state_path
from trader.observe.metrics import TraderMetrics
from trader.runtime import hybrid
from trader.runtime.runner import workflow_runner
from workflows.hybrid_validator import HybridValidator

log = logging.getLogger(__name__)


def validator_setup(
    settings: Settings, *, primary: str | None = None, legacy_state: Path | None = None
) -> c.ValidatorSetup:
    """What the deployment's validator compares. ``primary`` defaults to the mode's
    (``HYBRID_PRIMARY`` in ``both``); ``legacy_state`` to the legacy engine's state file in
    ``both`` mode (none in ``fsm``: exchange reconciliation only)."""
    if primary is None:
        primary = hybrid.roles(settings).primary
    if legacy_state is None and settings.effective_mode == "both":
        legacy_state = state_path(settings.data_dir)
    return c.ValidatorSetup(
        exchange=settings.exchange,
        task_queue=settings.task_queue,
        watchlist=list(settings.watchlist),
        interval_s=float(settings.hybrid_validation_interval_s),
        primary=primary,
        legacy_state_path=str(legacy_state) if legacy_state is not None else None,
        notify=settings.hybrid_log_divergences,
        run_queue=c.validator_task_queue(settings.task_queue),
    )


async def start_validator(client: Client, setup: c.ValidatorSetup) -> str:
    """Start the validator, or find it running; a running one takes ``setup`` (the settings
    may have changed) from its next check. Returns its workflow id."""
    wf_id = ids.validator_id_for(setup.exchange, setup.task_queue)
    handle = await client.start_workflow(
        "HybridValidator",
        c.ValidatorInput(setup=setup),
        id=wf_id,
        task_queue=setup.run_queue or setup.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Hybrid validator on {setup.exchange} ({setup.task_queue})",
    )
    # Always, not only when it differs: a query would need a worker to answer it (the
    # starter may run with --no-worker), and a signal costs 4 events per start.
    await handle.signal("configure", setup)
    log.info("hybrid validator %s every %gs", wf_id, setup.interval_s)
    await _warn_if_elsewhere(handle, setup)
    return wf_id


async def _warn_if_elsewhere(handle: WorkflowHandle[Any, Any], setup: c.ValidatorSetup) -> None:
    """Say so when the running validator is not on its own queue yet. It moves after its
    next check, but only a worker of the queue it is on can run that check: an FSM shadow
    that is down, or a worker of the previous release that continues it as new without the
    new setup, keeps it there (docs/migration.md, "When the shadow fails")."""
    try:
        queue = (await handle.describe()).task_queue
    except RPCError as exc:  # the start and the signal went through: never fail on this
        log.debug("hybrid validator not described: %s", exc)
        return
    if setup.run_queue and queue != setup.run_queue:
        log.warning(
            "hybrid validator %s runs on task queue %s, not its own %s yet: it moves there "
            "after its next check, which needs a worker of %s",
            handle.id,
            queue,
            setup.run_queue,
            queue,
        )


def validator_worker(
    settings: Settings,
    client: Client,
    *,
    primary: Exchange,
    ledger: LedgerStore,
    notifier: Notifier,
    metrics: TraderMetrics | None,
) -> Worker:
    """The worker of the validator's own queue: the workflow, its check on ``primary`` (the
    account the primary trades on) and its notifications (``notifier``: the primary's).
    Several per deployment are harmless (FSM_MODE=fsm: one in every worker): each task runs
    on one of them, and each reads the same account, ledger and state file."""
    return Worker(
        client,
        task_queue=c.validator_task_queue(settings.task_queue),
        workflows=[HybridValidator],
        workflow_runner=workflow_runner(settings.workflow_sandbox),
        activities=[
            ValidatorActivities(
                client,
                primary,
                ledger,
                divergence_log=divergence_log_path(settings.data_dir),
                metrics=metrics,
            ).validate,
            NotifyActivities(notifier).notify,
        ],
    )
