"""The worker's observability stops promptly: a stuck check hanging in a visibility call
(a server that accepts the connection but never answers) must not hold up shutdown, so
the phase log is still flushed and closed."""

from __future__ import annotations

import asyncio
import socket
import threading
from decimal import Decimal

from trader.config import Settings
from trader.observe.events import SINK, PhaseEvent
from trader.observe.phase_log import PhaseLog, read_events
from trader.runtime.observability import observability


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _HangingVisibility:
    """A client whose list calls never answer (and notes that one was made)."""

    identity = "w-hang"

    def __init__(self) -> None:
        self.listing = asyncio.Event()

    def list_workflows(self, query: str):  # noqa: ANN201
        listing = self.listing

        class _Never:
            def __aiter__(self):  # noqa: ANN204
                return self

            async def __anext__(self):  # noqa: ANN204
                listing.set()
                await asyncio.Event().wait()

        return _Never()


def _event() -> PhaseEvent:
    return PhaseEvent(
        ts=1.0,
        symbol="BTC/USDT",
        exchange="paper",
        src="warmup",
        dst="idle",
        trigger="warmed_up",
        reason="",
        decision_id=None,
        client_order_id=None,
        order_id=None,
        price=Decimal(1),
        position=Decimal(0),
        realized_pnl_total=Decimal(0),
        fees_total=Decimal(0),
        simulated=True,
        workflow_id="wf-hang",
        run_id="run-hang",
        seq=1,
        src_since=0.0,
    )


async def test_shutdown_does_not_wait_for_a_hanging_stuck_check(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        phase_log_file=tmp_path / "events.jsonl",
        phase_log_buffer_size=1 << 16,
        enable_prometheus=True,
        prometheus_port=_free_port(),
        stuck_check_interval_seconds=0.05,
    )
    client = _HangingVisibility()

    async def run() -> None:
        # The client is a stand-in with only what observability calls (arg-type).
        async with observability(settings, client) as metrics:  # type: ignore[arg-type]
            assert metrics is not None
            await asyncio.wait_for(client.listing.wait(), 5)  # the check is in flight
            SINK.publish(_event())

    await asyncio.wait_for(run(), timeout=5)
    assert [e.run_id for e in read_events(tmp_path / "events.jsonl")] == ["run-hang"]


async def test_closing_the_phase_log_leaves_the_event_loop_running(tmp_path, monkeypatch):
    """FSM_MODE=both: a shadow worker's restart closes its phase log while the primary
    trades on the same event loop; a writer slow to flush (close waits up to 5 s) must not
    stall it."""
    settings = Settings(data_dir=tmp_path, phase_log_file=tmp_path / "events.jsonl")
    closing, loop_ran = threading.Event(), threading.Event()
    seen: list[bool] = []
    close = PhaseLog.close

    def slow_close(self: PhaseLog, timeout: float = 5.0) -> None:
        closing.set()
        seen.append(loop_ran.wait(timeout=60))  # the loop runs meanwhile, or this times out
        close(self, timeout)

    monkeypatch.setattr(PhaseLog, "close", slow_close)

    async def primary() -> None:  # the other engine on the loop
        await asyncio.to_thread(closing.wait, 60)
        loop_ran.set()

    beside = asyncio.create_task(primary())
    async with observability(settings, _HangingVisibility()):  # type: ignore[arg-type]
        pass
    await beside
    assert seen == [True]
