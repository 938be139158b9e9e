"""A hung async test fails with the stacks of every task instead of running CI out of time.

pytest-timeout (``timeout`` in pyproject.toml) is the backstop for everything else, but its
signal lands in the event loop's ``select()``: the stack it prints says nothing about which
``await`` never returned, and the test's ``finally`` blocks (workers, servers) never run.
This guard wraps each async test: past ``ASYNC_TEST_TIMEOUT_S`` it prints every pending
task's stack, then cancels the test, so its cleanup runs and the next test starts clean.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, AnyStr, TypeVar

import pytest

T = TypeVar("T")

# The slowest test takes ~140 s on this machine; pytest-timeout's own bound is above this.
ASYNC_TEST_TIMEOUT_S = float(os.environ.get("HANG_GUARD_S", "480"))


async def bounded(aw: Awaitable[T], seconds: float, what: str) -> T:
    """``await aw``, failing the test after ``seconds`` with ``what`` it waited for: a wait
    that cannot end (a lost update, a workflow that never finishes) fails in place with its
    own name instead of running into the guard below or CI's limit. Pick ``seconds`` well
    above what the wait takes on a loaded 2-core machine: it must never fire on a healthy
    run. The chained ``TimeoutError`` carries the stack of where ``aw`` was waiting; one
    that ``aw`` raises itself passes through as it is."""
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            return await aw
    except TimeoutError as err:
        if not scope.expired():
            raise
        raise AssertionError(f"not done within {seconds:g} s: {what}") from err


def readline_within(proc: subprocess.Popen[AnyStr], seconds: float) -> AnyStr:
    """``proc.stdout.readline()``, the child killed and the test failed if no line came
    within ``seconds`` (a blocking read has no timeout: the kill ends it at EOF)."""
    assert proc.stdout is not None
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        proc.kill()

    timer = threading.Timer(seconds, kill)
    timer.start()
    try:
        line = proc.stdout.readline()
    finally:
        timer.cancel()
    if killed.is_set():
        raise AssertionError(f"no line from pid {proc.pid} within {seconds:g} s: {line!r}")
    return line


def _awaiting(coro: Any) -> list[str]:
    """Where a suspended coroutine waits, outermost first: ``Task.print_stack`` shows only
    the task's own frame, not the chain of ``await``s below it."""
    where = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            where.append(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return where


def _dump_tasks(nodeid: str, after_s: float) -> None:
    print(f"\n=== {nodeid} hung past {after_s:.0f} s; pending tasks: ===", file=sys.stderr)
    for task in asyncio.all_tasks():
        print(f"--- {task.get_name()} ---", file=sys.stderr)
        print("\n".join(_awaiting(task.get_coro())), file=sys.stderr)
    sys.stderr.flush()


def guarded(
    fn: Callable[..., Awaitable[Any]], nodeid: str, after_s: float
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        task = asyncio.current_task()
        assert task is not None
        hung = False

        def expire() -> None:
            nonlocal hung
            hung = True
            _dump_tasks(nodeid, after_s)
            task.cancel()

        timer = asyncio.get_running_loop().call_later(after_s, expire)
        try:
            return await fn(*args, **kwargs)
        except asyncio.CancelledError:
            if hung:
                pytest.fail(f"hung: still running after {after_s:.0f} s (task stacks on stderr)")
            raise
        finally:
            timer.cancel()

    return run


def guard_async_tests(items: list[pytest.Item], after_s: float = ASYNC_TEST_TIMEOUT_S) -> None:
    for item in items:
        fn = getattr(item, "obj", None)
        # Hypothesis wraps its own functions; those tests are pure and short.
        if inspect.iscoroutinefunction(fn) and not hasattr(fn, "hypothesis"):
            item.obj = guarded(fn, item.nodeid, after_s)  # type: ignore[attr-defined]
