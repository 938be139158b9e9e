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
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

# The slowest test takes ~140 s on this machine; pytest-timeout's own bound is above this.
ASYNC_TEST_TIMEOUT_S = float(os.environ.get("HANG_GUARD_S", "480"))


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
