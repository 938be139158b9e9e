"""``trader.runtime.shadow.supervise``: a failing shadow is logged once per failure at ERROR
with its cause, counted, restarted after a doubling, bounded backoff (a run that ends
cancelled by itself a failure too); the operator's stop (its run returning) and the process's
stop end it; a primary beside it is never touched. Whole e2e in tests/e2e/test_both_shadow.py."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from trader.observe.metrics import ShadowHealth
from trader.runtime import shadow, worker


def _value(health: ShadowHealth, name: str) -> float:
    for family in health.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(name)


async def test_each_failure_is_logged_once_counted_and_the_shadow_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop, health = asyncio.Event(), ShadowHealth("legacy", "1@h")
    attempts: list[int] = []

    async def run() -> None:
        attempts.append(len(attempts))
        if len(attempts) <= 4:
            raise OSError(f"account unreadable #{len(attempts)}")
        await stop.wait()  # the fifth run stays up until the process stops

    async def primary() -> str:  # beside it, untouched by any failure
        await stop.wait()
        return "traded on"

    caplog.set_level(logging.WARNING, logger=shadow.__name__)
    main = asyncio.create_task(primary())
    task = asyncio.create_task(
        shadow.supervise(
            "legacy",
            run,
            stop=stop,
            health=health,
            backoff_s=0.01,
            backoff_max_s=0.03,
        )
    )
    while len(attempts) < 5:
        await asyncio.sleep(0.01)
    assert not main.done() and not task.done()
    stop.set()
    await task
    assert await main == "traded on"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 4  # once per failure
    assert [r.exc_info is not None for r in errors] == [True] * 4  # the cause's traceback
    assert "account unreadable #1" in errors[0].getMessage()
    assert "the legacy SHADOW failed (OSError" in errors[0].getMessage()
    assert _value(health, "trader_shadow_failures_total") == 4
    assert _value(health, "trader_shadow_up") == 0  # stopped
    assert b'engine="legacy"' in generate_latest(_served(health))


def _served(health: ShadowHealth) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(health.labelled)
    return registry


async def test_the_backoff_doubles_and_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    stop, failures = asyncio.Event(), list[int]()

    async def run() -> None:
        failures.append(1)
        if len(failures) >= 6:
            stop.set()
        raise RuntimeError("a bug in the shadow")

    caplog.set_level(logging.ERROR, logger=shadow.__name__)
    await shadow.supervise("fsm", run, stop=stop, health=None, backoff_s=0.001, backoff_max_s=0.004)
    waits = [float(r.getMessage().rsplit("restarts in ", 1)[1].split()[0]) for r in caplog.records]
    assert waits == [0.001, 0.002, 0.004, 0.004, 0.004, 0.004]


async def test_a_run_that_returns_is_not_restarted() -> None:
    """The operator's stop ends a legacy shadow's engine: it stays stopped, no failure."""
    runs: list[int] = []
    health = ShadowHealth("legacy", "1@h")

    async def run() -> None:
        runs.append(1)

    await shadow.supervise("legacy", run, stop=asyncio.Event(), health=health)
    assert runs == [1]
    assert _value(health, "trader_shadow_failures_total") == 0


async def test_a_run_that_ends_cancelled_by_itself_is_a_failure_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """temporalio cancels the task that entered ``async with Worker`` on a fatal worker
    error (and never uncancels it): that CancelledError is the shadow's, not the
    supervisor's; it never escapes to stop the primary."""
    stop, health = asyncio.Event(), ShadowHealth("fsm", "1@h")
    runs: list[int] = []

    async def run() -> None:
        runs.append(1)
        if len(runs) == 1:
            current = asyncio.current_task()
            assert current is not None
            current.cancel()
            await asyncio.sleep(30)  # cancelled here
        await stop.wait()

    caplog.set_level(logging.ERROR, logger=shadow.__name__)
    task = asyncio.create_task(
        shadow.supervise("fsm", run, stop=stop, health=health, backoff_s=0.01)
    )
    while len(runs) < 2:
        assert not task.done(), task
        await asyncio.sleep(0.01)
    stop.set()
    await task  # returns: not cancelled
    assert _value(health, "trader_shadow_failures_total") == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "the fsm SHADOW failed (CancelledError" in errors[0], errors


async def test_cancelling_the_supervisor_cancels_the_run_and_waits_for_it() -> None:
    started, finished = asyncio.Event(), list[str]()

    async def run() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.01)  # a shutdown step: the supervisor waits for it
            finished.append("closed")

    task = asyncio.create_task(shadow.supervise("legacy", run, stop=asyncio.Event(), health=None))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished == ["closed"]


def test_the_longest_backoff_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHADOW_RESTART_MAX_SECONDS", raising=False)
    assert shadow.backoff_max_s() == shadow.BACKOFF_MAX_S == 300.0
    monkeypatch.setenv("SHADOW_RESTART_MAX_SECONDS", "4")
    assert shadow.backoff_max_s() == 4.0


async def test_a_failed_workers_background_tasks_are_cancelled() -> None:
    """The worker's start-up checks (reconcile requests, the validator's start) run
    beside it: a worker run that fails (an FSM shadow's, restarted) leaves none running."""
    started, ended = asyncio.Event(), list[str]()

    async def check() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        finally:
            ended.append("cancelled")

    with pytest.raises(RuntimeError):
        async with worker.background(check()):
            await started.wait()
            raise RuntimeError("the worker failed")
    assert ended == ["cancelled"]
