"""The worker's observability, started and stopped in one place: the JSONL phase log, the
Prometheus registry and its HTTP endpoint, both subscribed to the phase-event sink, and the
periodic stuck-symbol count."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from temporalio.client import Client

from trader.config import Settings
from trader.observe.events import SINK, Listener
from trader.observe.metrics import TraderMetrics
from trader.observe.phase_log import PhaseLog
from trader.runtime import hybrid
from trader.runtime.stuck import report_stuck

log = logging.getLogger(__name__)

_INDEX_WAIT_S = 60.0


@contextlib.asynccontextmanager
async def observability(
    settings: Settings,
    client: Client,
    *,
    alongside: TraderMetrics | None = None,
    served_by: TraderMetrics | None = None,
) -> AsyncIterator[TraderMetrics | None]:
    """Yield the metrics (None unless ENABLE_PROMETHEUS) for the activities to feed.

    ``FSM_MODE=both``: the series carry ``engine="fsm"``, count the workflows' transitions
    only (the legacy engine publishes to the same sink), and ``alongside`` (the legacy
    engine's metrics) is served on the same endpoint; or, when the FSM is the shadow, its
    series are served on ``served_by``'s endpoint (the legacy primary's), which stays up
    while the shadow's worker fails and restarts (trader/runtime/shadow.py).

    On exit the listeners leave the sink first, then the log writes what is queued and
    closes, so no event is written to a closed file and none queued is lost.
    """
    phase_log = PhaseLog(settings.phase_log_path(), buffer_size=settings.phase_log_buffer_size)
    # FSM_MODE=both: the legacy engine in this process writes its own file.
    log_listener: Listener = phase_log
    if hybrid.is_both(settings):
        log_listener = hybrid.EngineOnly(hybrid.FSM, phase_log)
    metrics: TraderMetrics | None = None
    listener: Listener | None = None
    stop = asyncio.Event()
    stuck_task: asyncio.Task[None] | None = None
    try:
        # Index the log directory before the worker polls (off the event loop): the replays
        # that follow are then checked against it in memory. Past the wait the worker starts
        # anyway; the writer checks what queued meanwhile once the index is complete.
        if not await asyncio.to_thread(phase_log.wait_ready, _INDEX_WAIT_S):
            log.warning(
                "phase log: still indexing %s after %.0f s; starting anyway",
                phase_log.path.parent,
                _INDEX_WAIT_S,
            )
        SINK.subscribe(log_listener, replayed=True)  # what the directory lacks, replays too
        log.info(
            "phase events -> %s (%d keys in the directory)", phase_log.path, phase_log.indexed_keys
        )
        if settings.enable_prometheus:
            both = hybrid.is_both(settings)
            serving = TraderMetrics(client.identity, engine=hybrid.FSM if both else None)
            if alongside is not None:
                serving.serve_also(alongside)
            if served_by is not None:
                served_by.serve_also(serving)
            else:
                serving.serve(settings.prometheus_port, settings.prometheus_bind_address)
            metrics = serving  # only now: the finally below unsubscribes and closes it
            listener = hybrid.EngineOnly(hybrid.FSM, metrics) if both else metrics
            SINK.subscribe(listener)  # live transitions only: replays were counted before
            log.info(
                "metrics on http://%s:%d/metrics",
                settings.prometheus_bind_address,
                settings.prometheus_port,
            )
            stuck_task = asyncio.create_task(
                report_stuck(
                    client,
                    metrics,
                    timeout_s=settings.stuck_timeout_seconds,
                    interval_s=settings.stuck_check_interval_seconds,
                    task_queue=settings.task_queue,
                    stop=stop,
                )
            )
        yield metrics
    finally:
        stop.set()
        if stuck_task is not None:
            # Cancelled, not awaited to its end: a visibility call in flight can hang (a
            # server that never answers) and would hold back the log's final flush.
            stuck_task.cancel()
            await asyncio.wait({stuck_task})
        if listener is not None:
            SINK.unsubscribe(listener)
        if metrics is not None:
            if served_by is not None:
                served_by.serve_no_more(metrics)
            metrics.close()
        SINK.unsubscribe(log_listener)
        # Off the loop: the flush waits up to 5 s for the writer, and in FSM_MODE=both a
        # restarting shadow worker closes its log while the primary trades on this loop.
        await asyncio.to_thread(phase_log.close)
