"""``FSM_MODE=both``: the shadow runs supervised, so nothing it does stops the primary.

Everything of the shadow (its exchange account, the legacy engine's state store, the
worker on its own queues, its ledger connection, its hub subscriptions) is built inside
``supervise``'s ``run``: a failure anywhere in it, at start or later, ends that run only.
It is logged once at ERROR with its cause (the traceback), counted
(``trader_shadow_failures_total{engine}``; ``trader_shadow_up{engine}`` is 0 until a run has
lasted ``UP_AFTER_S``), and the shadow is
started again after a backoff that doubles from ``BACKOFF_S`` to ``BACKOFF_MAX_S`` (back to
``BACKOFF_S`` once a run lasted ``HEALTHY_S``): a shadow that cannot start (a corrupt
account file, a state store another process holds) is retried every 5 minutes at most, one
ERROR line each, never a flood; one that failed once by chance is back within seconds.
The primary trades on throughout (docs/migration.md, "When the shadow fails").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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


async def supervise(
    engine: str,
    run: Callable[[], Awaitable[None]],
    *,
    stop: asyncio.Event,
    health: ShadowHealth | None,
    after: Callable[[], Awaitable[None]] | None = None,
    backoff_s: float = BACKOFF_S,
    backoff_max_s: float = BACKOFF_MAX_S,
) -> None:
    """Run the shadow ``engine`` until ``stop`` is set or ``run`` returns (the operator's
    stop), restarting it after each failure. ``after``: put right what a failed run took
    down that the primary shares (the legacy engine stops the hub it was given)."""
    delay = backoff_s
    loop = asyncio.get_running_loop()
    try:
        while not stop.is_set():
            started = time.monotonic()
            # Up once a run has lasted UP_AFTER_S: one that fails at start never shows up.
            up = None if health is None else loop.call_later(UP_AFTER_S, health.running)
            try:
                await run()
                return
            except Exception as exc:  # the shadow's failure is its own: the primary trades on
                if time.monotonic() - started >= HEALTHY_S:
                    delay = backoff_s
                if health is not None:
                    health.failed()
                log.error(
                    "FSM_MODE=both: the %s SHADOW failed (%s: %s); the primary trades on, "
                    "the shadow restarts in %g s",
                    engine,
                    type(exc).__name__,
                    exc,
                    delay,
                    exc_info=exc,
                )
            finally:
                if up is not None:
                    up.cancel()
            if after is not None:
                try:
                    await after()
                except Exception:
                    log.exception("FSM_MODE=both: restoring what the %s shadow shared", engine)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, backoff_max_s)
            if not stop.is_set():
                log.warning("FSM_MODE=both: restarting the %s shadow", engine)
    finally:
        if health is not None:
            health.stopped()
