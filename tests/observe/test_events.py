"""The sink delivers each transition at most once, replayed ones only to the listeners that
asked for them (the log, never the metrics), and never raises into workflow code.
(The log's writer: test_phase_log.py.)"""

from __future__ import annotations

from tests.observe.sample import event
from trader.observe.events import EventSink, PhaseEvent
from trader.observe.log_index import RUN_BYTES
from trader.observe.metrics import TraderMetrics


def test_same_transition_is_delivered_once():
    sink, got = EventSink(), list[PhaseEvent]()
    sink.subscribe(got.append)
    assert sink.publish(event(1)) is True
    assert sink.publish(event(1)) is False  # replay / retried task on this worker
    assert sink.publish(event(2)) is True
    assert sink.publish(event(1, run_id="run-2")) is True  # continue-as-new: a new run
    assert [(e.run_id, e.seq) for e in got] == [("run-1", 1), ("run-1", 2), ("run-2", 1)]


def test_a_different_edge_under_the_same_key_supersedes():
    sink, got = EventSink(), list[PhaseEvent]()
    sink.subscribe(got.append)
    sink.publish(event(1, dst="idle", trigger="warmed_up"))
    assert sink.publish(event(1, dst="error", trigger="failed")) is True
    assert [e.trigger for e in got] == ["warmed_up", "failed"]


def test_a_failing_listener_neither_raises_nor_starves_the_others():
    sink, got = EventSink(), list[PhaseEvent]()

    def broken(_: PhaseEvent) -> None:
        raise OSError("disk full")

    sink.subscribe(broken)
    sink.subscribe(got.append)
    assert sink.publish(event(1)) is True
    assert len(got) == 1
    sink.unsubscribe(broken)
    sink.publish(event(2))
    assert len(got) == 2


def test_memory_is_bounded_and_forgets_the_least_recently_used_run():
    sink, got = (
        EventSink(remember_bytes=2 * RUN_BYTES + 7),
        list[PhaseEvent](),
    )  # two runs, three keys
    sink.subscribe(got.append)
    for run_id, seq in (("old", 1), ("old", 2), ("new", 1)):
        sink.publish(event(seq, run_id=run_id))
    assert sink.publish(event(1, run_id="new")) is False
    sink.publish(event(2, run_id="new"))  # a fourth key: run "old" is forgotten, whole
    assert sink.publish(event(1, run_id="new")) is False
    assert sink.publish(event(1, run_id="old")) is True


def test_replayed_transitions_reach_only_the_listeners_that_asked():
    sink, log, metrics = EventSink(), list[PhaseEvent](), TraderMetrics("w")
    sink.subscribe(log.append, replayed=True)
    sink.subscribe(metrics)
    assert sink.publish(event(1), replayed=True) is True  # a killed worker's transition
    assert sink.publish(event(2)) is True  # live: this worker made it
    assert sink.publish(event(2), replayed=True) is False  # its replay (a cache eviction)
    assert [e.seq for e in log] == [1, 2]
    assert (
        metrics.registry.get_sample_value(
            "trader_transitions_total",
            {"src": "warmup", "dst": "idle", "trigger": "warmed_up", "worker": "w"},
        )
        == 1
    )


def test_what_no_listener_wanted_is_not_remembered():
    sink, live, log = EventSink(), list[PhaseEvent](), list[PhaseEvent]()
    sink.subscribe(live.append)  # live only, like the metrics
    assert sink.publish(event(1), replayed=True) is False
    sink.subscribe(log.append, replayed=True)  # the log comes later: it still gets it
    assert sink.publish(event(1), replayed=True) is True
    assert (live, [e.seq for e in log]) == ([], [1])
