"""The sink delivers each transition at most once, never raises into workflow code, and the
JSONL log writes real lines: flushed within a second and on close."""

from __future__ import annotations

import time
from decimal import Decimal

from trader.observe.events import EventSink, PhaseEvent
from trader.observe.phase_log import PhaseLog, read_events


def event(seq: int = 1, *, run_id: str = "run-1", dst: str = "idle",
          trigger: str = "warmed_up") -> PhaseEvent:
    return PhaseEvent(
        ts=1_700_000_000.0 + seq, symbol="BTC/USDT", exchange="paper", src="warmup", dst=dst,
        trigger=trigger, reason="anchor 100", decision_id=None, client_order_id=None,
        order_id=None, price=Decimal("100.5"), position=Decimal(0),
        realized_pnl_total=Decimal("-1.25"), fees_total=Decimal("0.2"), simulated=True,
        workflow_id="trader:paper:BTC-USDT", run_id=run_id, seq=seq, src_since=1.0)


def test_same_transition_is_delivered_once():
    sink, got = EventSink(), []
    sink.subscribe(got.append)
    assert sink.publish(event(1)) is True
    assert sink.publish(event(1)) is False  # replay / retried task on this worker
    assert sink.publish(event(2)) is True
    assert sink.publish(event(1, run_id="run-2")) is True  # continue-as-new: a new run
    assert [(e.run_id, e.seq) for e in got] == [("run-1", 1), ("run-1", 2), ("run-2", 1)]


def test_a_different_edge_under_the_same_key_supersedes():
    sink, got = EventSink(), []
    sink.subscribe(got.append)
    sink.publish(event(1, dst="idle", trigger="warmed_up"))
    assert sink.publish(event(1, dst="error", trigger="failed")) is True
    assert [e.trigger for e in got] == ["warmed_up", "failed"]


def test_a_failing_listener_neither_raises_nor_starves_the_others():
    sink, got = EventSink(), []

    def broken(_: PhaseEvent) -> None:
        raise OSError("disk full")

    sink.subscribe(broken)
    sink.subscribe(got.append)
    assert sink.publish(event(1)) is True
    assert len(got) == 1
    sink.unsubscribe(broken)
    sink.publish(event(2))
    assert len(got) == 2


def test_memory_is_bounded_and_forgets_the_oldest():
    sink, got = EventSink(remember=2), []
    sink.subscribe(got.append)
    for seq in (1, 2, 3):
        sink.publish(event(seq))
    assert sink.publish(event(3)) is False
    assert sink.publish(event(1)) is True  # forgotten: 3 keys > remember=2


def test_log_lines_round_trip_and_are_flushed_within_a_second(tmp_path):
    path = tmp_path / "logs" / "phase_events_x.jsonl"
    log = PhaseLog(path, buffer_size=8192, flush_interval_s=1.0)
    try:
        log(event(1))
        log(event(2))
        assert path.read_text() == ""  # buffered: no write per transition
        deadline = time.monotonic() + 5
        while path.read_text().count("\n") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e.seq for e in read_events(path)] == [1, 2]
        assert read_events(path)[0] == event(1)  # Decimals survive exactly
        log(event(3))
    finally:
        log.close()
    assert [e.seq for e in read_events(path)] == [1, 2, 3]  # close flushed the rest
    log.close()  # idempotent
    log(event(4))  # after close: dropped, not an exception
    assert len(read_events(path)) == 3
