"""The JSONL log's writer thread, on real files: lines written promptly and on close, never
twice in one directory (what the files held at start, what other workers append later),
no line glued to a killed writer's fragment, and a stuck disk never blocks the caller."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from tests.observe.sample import event
from trader.core.errors import ConfigError
from trader.observe.events import PhaseEvent
from trader.observe.phase_log import _WAIT_S, PhaseLog, read_events


def keys(path: Path) -> list[tuple[str, int, str]]:
    return [(e.run_id, e.seq, e.trigger) for e in read_events(path)]


def until(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def logs(tmp_path):
    """PhaseLogs in ``tmp_path/logs``, closed at the end."""
    opened: list[PhaseLog] = []

    def open_log(name: str, **kw) -> PhaseLog:
        log = PhaseLog(tmp_path / "logs" / name, **kw)
        assert log.wait_ready(5)
        opened.append(log)
        return log

    yield open_log
    for log in opened:
        log.close()


def test_a_line_is_written_before_the_listener_returns(logs):
    """On a healthy disk the line is in the kernel before the workflow task completes:
    a SIGKILL after it cannot lose it."""
    log = logs("w.jsonl", tail_interval_s=60)  # no periodic wake-up: writes are prompt
    for seq in range(1, 50):
        log(event(seq))
        assert log.path.read_bytes().count(b"\n") == seq
    assert read_events(log.path)[0] == event(1)  # Decimals survive exactly


def test_workflow_threads_publishing_at_once_lose_nothing(logs):
    log = logs("w.jsonl")
    threads = [
        threading.Thread(
            target=lambda n=n: [log(event(seq, run_id=f"r{n}")) for seq in range(1, 100)]
        )
        for n in range(4)
    ]  # several workflow threads at once
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert sorted((e.run_id, e.seq) for e in read_events(log.path)) == sorted(
        (f"r{n}", seq) for n in range(4) for seq in range(1, 100)
    )
    log.close()  # idempotent
    log(event(500))  # after close: dropped, not an exception
    assert len(read_events(log.path)) == 4 * 99


def test_whole_lines_per_write_call_even_with_a_tiny_buffer(logs):
    log = logs("w.jsonl", buffer_size=100)  # smaller than one line
    for seq in range(1, 20):
        log(event(seq))
    assert log.flush()
    assert [e.seq for e in read_events(log.path)] == list(range(1, 20))


def test_what_the_directory_holds_at_start_is_not_written_again(logs):
    first = logs("dead.jsonl")
    for seq in (1, 2, 3):
        first(event(seq))
    first.close()
    restarted = logs("restarted.jsonl")
    assert restarted.indexed_keys == 3
    for seq in (1, 2, 3, 4):  # its replay shows 1..3, then it makes 4
        restarted(event(seq))
    restarted(event(3, dst="error", trigger="failed"))  # another edge supersedes
    assert restarted.flush()
    assert keys(restarted.path) == [("run-1", 4, "warmed_up"), ("run-1", 3, "failed")]


def test_a_fixed_file_keeps_its_lines_across_restarts(logs):
    log = logs("fixed.jsonl")
    log(event(1))
    log.close()
    again = logs("fixed.jsonl")
    again(event(1))
    again(event(2))
    again.close()
    assert [e.seq for e in read_events(again.path)] == [1, 2]


def test_two_workers_cannot_share_one_file(logs, tmp_path):
    logs("shared.jsonl")
    with pytest.raises(ConfigError, match="in use by another worker"):
        PhaseLog(tmp_path / "logs" / "shared.jsonl")


def test_lines_another_live_worker_appends_are_picked_up(logs):
    a, b = logs("a.jsonl"), logs("b.jsonl", tail_interval_s=0.05)
    a(event(1))
    assert a.flush()
    until(lambda: b.indexed_keys == 1, "b to read a's line")  # periodic, while idle
    a(event(2))
    assert a.flush()
    b(event(2))  # no wait: b reads a's file again before it writes
    b(event(1))
    b(event(3))
    assert b.flush()
    assert keys(b.path) == [("run-1", 3, "warmed_up")]


def test_no_line_is_glued_to_a_killed_writers_fragment(logs, tmp_path):
    (tmp_path / "logs").mkdir()
    whole = event(1).model_dump_json()
    (tmp_path / "logs" / "fixed.jsonl").write_text(whole + "\n" + whole[:50])  # killed
    (tmp_path / "logs" / "other.jsonl").write_text(event(5).model_dump_json()[:60])
    log = logs("fixed.jsonl")
    assert log.indexed_keys == 1  # only complete lines count
    log(event(2))
    assert log.flush()
    lines = log.path.read_text().splitlines()
    assert lines[1] == whole[:50] and lines[2] == event(2).model_dump_json()
    with (tmp_path / "logs" / "other.jsonl").open("a") as f:  # the fragment's line ends
        f.write(event(5).model_dump_json()[60:] + "\n")
    log(event(5))
    assert log.flush()
    assert "\n" + event(5).model_dump_json() not in log.path.read_text()


def test_a_stuck_disk_never_blocks_the_caller(tmp_path):
    """A pipe nobody reads stands for a hanging filesystem: the writer thread blocks in
    ``write``, the listener (the workflow thread) waits for it once, then returns at once
    and drops what the bounded queue cannot hold; once the disk answers, ``close`` writes
    every queued line."""
    fifo = tmp_path / "logs" / "stuck.jsonl"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    fcntl.fcntl(reader, fcntl.F_SETPIPE_SZ, 4096)  # full after ~9 lines
    log = PhaseLog(fifo, max_queued=50)
    try:
        assert log.wait_ready(5)
        took = []
        for seq in range(1, 501):
            t0 = time.perf_counter()
            log(event(seq))
            took.append(time.perf_counter() - t0)
            time.sleep(0.0005)  # the writer runs meanwhile, until the pipe is full
        # One wait of _WAIT_S once the writer is stuck, then nobody waits (a caller that
        # waited each time would wait for every line it queued: ~50). A few more waits are
        # a loaded machine's: the writer not scheduled for _WAIT_S while the pipe still
        # took lines (~9), or this thread preempted inside a call; a single preemption also
        # failed a 0.1 s bound on the slowest call. A caller blocked on the full pipe would
        # not return within 2 s.
        waits = [t for t in took if t >= _WAIT_S]
        assert len(waits) <= 10, waits
        assert max(took) < 2.0
        assert 0 < log.dropped < 500 - 50
        got = bytearray()

        def drain() -> None:  # the disk answers again
            while True:
                try:
                    data = os.read(reader, 1 << 16)
                except BlockingIOError:
                    time.sleep(0.005)
                    continue
                if not data:  # the writer closed its end
                    return
                got.extend(data)

        thread = threading.Thread(target=drain)
        thread.start()
        log.close(timeout=10)  # writes everything still queued, then closes its end
        thread.join(10)
        seqs = [PhaseEvent.model_validate_json(line).seq for line in got.decode().splitlines()]
        assert len(seqs) == 500 - log.dropped and seqs == sorted(seqs)
    finally:
        log.close()
        os.close(reader)
