"""The hang guard fails a hung async test, runs its cleanup, and names where it waited."""

from __future__ import annotations

import asyncio

import pytest

from tests.hang_guard import guarded


async def _waits_forever(cleaned: list[str]) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        cleaned.append("cleanup")


async def test_a_hung_test_fails_after_its_bound_and_its_cleanup_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cleaned: list[str] = []
    with pytest.raises(pytest.fail.Exception, match="hung: still running after 0 s"):
        await guarded(_waits_forever, "t::hung", 0.2)(cleaned)
    assert cleaned == ["cleanup"]
    stacks = capsys.readouterr().err
    assert "t::hung hung past 0 s" in stacks
    # The chain of awaits reaches the line that never returned.
    assert "in _waits_forever" in stacks and "locks.py" in stacks


async def test_a_test_that_ends_in_time_is_untouched() -> None:
    async def quick(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * 2

    assert await guarded(quick, "t::quick", 5.0)(21) == 42
    # The timer was cancelled: nothing fires after the test.
    await asyncio.sleep(0.05)


async def test_a_cancellation_that_is_not_the_guards_still_propagates() -> None:
    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await guarded(cancelled, "t::cancel", 5.0)()
