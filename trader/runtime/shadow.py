"""``FSM_MODE=both``: the shadow runs supervised, so nothing it does stops the primary.

Everything of the shadow (its exchange account, the legacy engine's state store, the
worker on its own queues, its ledger connection, its hub subscriptions) is built inside
``supervise``'s ``run``: a failure anywhere in it, at start or later, ends that run only.
Each run is a child task, so one that ends cancelled by itself (temporalio cancels the
task running a worker on a fatal worker error) is a failure like any other. It is logged
once at ERROR with its cause (the traceback), counted
(``trader_shadow_failures_total{engine}``; ``trader_shadow_up{engine}`` is 0 until a run
has lasted ``UP_AFTER_S``), and the shadow is started again after a backoff that doubles
from ``BACKOFF_S`` to ``BACKOFF_MAX_S`` (``SHADOW_RESTART_MAX_SECONDS`` overrides it, for
tests and operators; back to ``BACKOFF_S`` once a run lasted ``HEALTHY_S``): a shadow that
cannot start (a corrupt account file) is retried every 5 minutes at most, one ERROR line
each, never a flood; one that failed once by chance is back within seconds.
The primary trades on throughout (docs/migration.md, "When the shadow fails").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable

from trader.observe.metrics import ShadowHealth

log = logging.getLogger(__name__)

BACKOFF_S = 2.0
BACKOFF_MAX_S = 300.0
UP_AFTER_S = 10.0
"""A run counts as up (``trader_shadow_up`` 1) once it lasted this long without failing."""
HEALTHY_S = 600.0
"""A run that lasted this long was healthy: the next failure waits ``BACKOFF_S`` again."""


def backoff_max_s() -> float:
    """``SHADOW_RESTART_MAX_SECONDS`` (for tests and operators; default ``BACKOFF_MAX_S``):
    the longest wait before a failed shadow is started again."""
    raw = os.environ.get("SHADOW_RESTART_MAX_SECONDS", "")
    return float(raw) if raw.strip() else BACKOFF_MAX_S


async def supervise(
    engine: str,
    run: Callable[[], Awaitable[None]],
    *,
    stop: asyncio.Event,
    health: ShadowHealth | None,
    backoff_s: float = BACKOFF_S,
    backoff_max_s: float = BACKOFF_MAX_S,
    role: str = "shadow",
) -> None:
    """Run the shadow ``engine`` until ``stop`` is set or ``run`` returns (the operator's
    stop), restarting it after each failure. Each run is a task of its own: one that ends
    cancelled while this supervisor is not (temporalio cancels the task that runs a worker
    on a fatal worker error) is the shadow's failure too, never the supervisor's. ``role``:
    what the logs call it (``run_both`` supervises the legacy primary's validator too)."""
    delay = min(backoff_s, backoff_max_s)
    loop = asyncio.get_running_loop()
    try:
        while not stop.is_set():
            started = time.monotonic()
            # Up once a run has lasted UP_AFTER_S: one that fails at start never shows up.
            up = None if health is None else loop.call_later(UP_AFTER_S, health.running)
            try:
                exc = await _attempt(engine, run, role)
            finally:
                if up is not None:
                    up.cancel()
            if exc is None:
                return
            if time.monotonic() - started >= HEALTHY_S:
                delay = min(backoff_s, backoff_max_s)
            if health is not None:
                health.failed()
            log.error(
                "FSM_MODE=both: the %s %s failed (%s: %s); the primary trades on, "
                "the %s restarts in %g s",
                engine,
                role.upper(),
                type(exc).__name__,
                exc,
                role,
                delay,
                exc_info=exc,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, backoff_max_s)
            if not stop.is_set():
                log.warning("FSM_MODE=both: restarting the %s %s", engine, role)
    finally:
        if health is not None:
            health.stopped()


async def _attempt(
    engine: str, run: Callable[[], Awaitable[None]], role: str
) -> BaseException | None:
    """One run in a child task: None if it returned, else how it failed (a CancelledError
    of its own included). The supervisor's own cancellation cancels the run, waits for it
    to finish, and propagates; a BaseException that is not a failure (SystemExit,
    KeyboardInterrupt) propagates too."""

    async def body() -> None:
        await run()

    task = asyncio.create_task(body(), name=f"{engine}-{role}")
    try:
        await asyncio.wait({task})
    except asyncio.CancelledError:
        task.cancel()
        await asyncio.wait({task})
        raise
    if task.cancelled():
        return asyncio.CancelledError(f"the {engine} {role}'s run was cancelled")
    exc = task.exception()
    if exc is not None and not isinstance(exc, Exception | asyncio.CancelledError):
        raise exc
    return exc
