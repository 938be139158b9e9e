"""Starting the HybridValidator (FSM_MODE=fsm and both), idempotently: one per exchange
account and deployment, whoever starts it first (the starter or any worker)."""

from __future__ import annotations

import logging
from pathlib import Path

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from trader import contracts as c
from trader.config import Settings
from trader.core import ids
from trader.legacy.store import state_path
from trader.runtime import hybrid

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
    )


async def start_validator(client: Client, setup: c.ValidatorSetup) -> str:
    """Start the validator, or find it running; a running one takes ``setup`` (the settings
    may have changed) from its next check. Returns its workflow id."""
    wf_id = ids.validator_id_for(setup.exchange, setup.task_queue)
    handle = await client.start_workflow(
        "HybridValidator",
        c.ValidatorInput(setup=setup),
        id=wf_id,
        task_queue=setup.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Hybrid validator on {setup.exchange} ({setup.task_queue})",
    )
    # Always, not only when it differs: a query would need a worker to answer it (the
    # starter may run with --no-worker), and a signal costs 4 events per start.
    await handle.signal("configure", setup)
    log.info("hybrid validator %s every %gs", wf_id, setup.interval_s)
    return wf_id
