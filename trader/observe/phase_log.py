"""The JSONL phase log: append-only, one line per transition (a ``PhaseEvent``), none lost
on a crash and none written twice.

Each worker appends to its own file; the ``*.jsonl`` files of one directory are one log.
The listener runs on the workflow thread and does no I/O: it drops an event whose
``(run_id, seq)`` and edge the directory already holds, queues any other and waits (50 ms
at most) for the writer thread to write it. That thread does all the I/O: it first indexes
the directory's files (``wait_ready``), then writes each queued line at once (whole lines,
at most ``buffer_size`` bytes per write call), after reading what the other workers
appended meanwhile, so that a line is written by whichever worker sees it first and by no
other.

Nothing is lost on a crash: on a healthy disk a line is written before its workflow task
completes, so a SIGKILL loses only transitions whose task never completed, and the retried
task makes them again. What a worker could not write in time (a stuck disk, a full queue)
comes back through replay: the workflow publishes replayed transitions too (flagged; the
metrics skip them), and the worker that replays the workflow next, taking it over or
restarted, writes what the directory lacks. Memory stays bounded: the index
(``log_index``, ~2 bytes a key plus ~270 a run, 16 MB at most) and the queue.
"""

from __future__ import annotations

import fcntl
import logging
import queue
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from trader.core.errors import ConfigError
from trader.observe.events import PhaseEvent
from trader.observe.log_dir import LogDirectory
from trader.observe.log_index import Edge, KeyIndex, parse_key

log = logging.getLogger(__name__)

# How long a transition waits for its line to be written: long enough for a healthy disk
# (~0.1 ms), so the line is in the kernel before the workflow task completes (a SIGKILL
# then cannot lose it), far below the 2 s deadlock detector. Once the writer is stuck
# longer than this, nobody waits: the lines queue up and a later replay covers a crash.
_WAIT_S = 0.05
_Item = tuple[int, str, int, Edge, bytes] | None  # (ticket, run_id, seq, edge, line), or the end


class PhaseLog:
    """A sink listener (subscribe it with ``replayed=True``) appending each transition the
    log directory does not hold yet as one JSON line to ``path``."""

    def __init__(
        self,
        path: Path,
        *,
        buffer_size: int = 8192,
        tail_interval_s: float = 1.0,
        max_index_bytes: int = 16 << 20,
        max_queued: int = 100_000,
    ) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("ab", buffering=0)  # whole lines per write, no buffer
            if not _lock(self._file.fileno()):
                self._file.close()
                raise ConfigError(
                    f"PHASE_LOG_FILE: {path} is in use by another worker "
                    "(leave it unset, or give each worker its own file)"
                )
            self._at_line_start = _ends_a_line(path)
        except OSError as exc:
            raise ConfigError(f"PHASE_LOG_FILE: cannot append to {path}: {exc}") from None
        self._buffer_size = buffer_size
        self._tail_interval = tail_interval_s
        self._dir = LogDirectory(path.parent, own=path)
        self._lock = threading.Lock()  # guards the index, the tickets and the queue order
        # What the directory holds: 16 MB are ~3.7M keys in runs of 100 transitions.
        self._index = KeyIndex(max_bytes=max_index_bytes)
        # ~0.6 KB a queued line: 100k is ~60 MB, only if the disk hangs that long.
        self._queue: queue.Queue[_Item] = queue.Queue(max_queued)
        self._tickets = 0  # events queued so far
        self._done = threading.Condition()
        self._done_upto = 0  # events written (or found in the directory) so far
        self._busy_since: float | None = None  # the writer is reading or writing files
        self._ready = threading.Event()
        self._closing = False
        self.dropped = 0
        """Lines dropped because the queue was full (a later replay writes them)."""
        self._writer = threading.Thread(target=self._run, name="phase-log-writer", daemon=True)
        self._writer.start()

    # --- the workflow thread ---------------------------------------------------------------
    def __call__(self, event: PhaseEvent) -> None:
        edge = (event.src, event.dst, event.trigger)
        with self._lock:
            if self._closing or self._index.has(event.run_id, event.seq, edge):
                return
        line = event.model_dump_json().encode() + b"\n"  # ~3 us, outside the lock
        with self._lock:
            if self._closing:
                return
            try:
                self._queue.put_nowait((self._tickets + 1, event.run_id, event.seq, edge, line))
                self._tickets += 1
                ticket = self._tickets
            except queue.Full:  # the disk is stuck: never block the workflow
                self.dropped += 1
                if self.dropped % 1000 == 1:
                    log.warning(
                        "phase log %s: queue full, %d lines dropped so far (a replay writes them)",
                        self.path,
                        self.dropped,
                    )
                return
        if not self._stuck():
            self._wait_written(ticket, _WAIT_S)

    def _stuck(self) -> bool:
        busy = self._busy_since
        return not self._ready.is_set() or (busy is not None and time.monotonic() - busy > _WAIT_S)

    def _wait_written(self, ticket: int, timeout: float) -> bool:
        with self._done:
            return self._done.wait_for(lambda: self._done_upto >= ticket, timeout)

    # --- any thread ------------------------------------------------------------------------
    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the directory is indexed (before the worker polls: its replays are
        then dropped in memory instead of filling the queue)."""
        return self._ready.wait(timeout)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every line queued so far is written."""
        with self._lock:
            ticket = self._tickets
        return self._wait_written(ticket, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write every queued line, stop the writer and close the file (idempotent)."""
        with self._lock:
            closing, self._closing = self._closing, True
        if not closing:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                log.warning("phase log %s: writer stuck, closing without it", self.path)
        self._writer.join(timeout)

    @property
    def indexed_keys(self) -> int:
        with self._lock:
            return len(self._index)

    # --- the writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._busy_since = time.monotonic()
            self._index_lines(self._dir.new_lines())  # every file, this one's own included
            self._busy_since = None
            self._ready.set()
            self._loop()
        except Exception:  # a bug here must not take the worker down: the history has it all
            log.exception("phase log %s: writer failed", self.path)
        finally:
            with self._lock:
                self._closing = True  # from now on events are dropped, nobody waits
            self._ready.set()
            self._file.close()

    def _loop(self) -> None:
        last_tail = time.monotonic()
        done = False
        while not done:
            try:
                items = [self._queue.get(timeout=self._tail_interval)]
            except queue.Empty:
                items = []
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            done = None in items
            events = [i for i in items if i is not None]
            self._busy_since = time.monotonic()
            # Before every write (a line another worker wrote before this instant is never
            # written again: ~2 us per file in the directory), and every interval when idle.
            if events or time.monotonic() - last_tail >= self._tail_interval:
                self._index_lines(self._dir.new_lines())
                last_tail = time.monotonic()
            if events:
                self._write(events)
            self._busy_since = None
            if events:
                with self._done:
                    self._done_upto = events[-1][0]
                    self._done.notify_all()

    def _index_lines(self, lines: Iterable[bytes]) -> None:
        keys = []
        for line in lines:
            key = parse_key(line)
            if key is not None:
                keys.append(key)
            if len(keys) >= 4096:
                self._put(keys)
                keys = []
        self._put(keys)

    def _put(self, keys: list[tuple[str, int, Edge]]) -> None:
        with self._lock:
            for run_id, seq, edge in keys:
                self._index.put(run_id, seq, edge)

    def _write(self, events: list[tuple[int, str, int, Edge, bytes]]) -> None:
        fresh = []
        with self._lock:  # the final check: other files were read just now
            for _, run_id, seq, edge, line in events:
                if not self._index.has(run_id, seq, edge):
                    self._index.put(run_id, seq, edge)
                    fresh.append(line)
        chunk: list[bytes] = []
        size = 0
        for line in fresh:
            if chunk and size + len(line) > self._buffer_size:
                self._write_chunk(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            self._write_chunk(b"".join(chunk))

    def _write_chunk(self, data: bytes) -> None:
        if not self._at_line_start:  # after a failed write: never glue a line to a fragment
            data = b"\n" + data
        left = memoryview(data)
        try:
            while left:
                written = self._file.write(left)
                if not written:
                    raise OSError("nothing written")
                left = left[written:]
        except OSError as exc:  # disk full or gone: a restarted worker's replays write them
            log.warning("phase log %s: write failed: %s", self.path, exc)
        if len(left) < len(data):
            self._at_line_start = not left


def _lock(fd: int) -> bool:
    """Hold an advisory lock while the file is open (the kernel drops it when the process
    dies, SIGKILL included): a file shared by two workers would hide each one's lines from
    the other's dedup. False when another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a filesystem without locks: go on unchecked
        pass
    return True


def _ends_a_line(path: Path) -> bool:
    """Whether appending to ``path`` starts a new line (a killed writer may have left half
    of one). Not a regular file (a pipe): nothing to look at."""
    if not path.is_file():
        return True
    with path.open("rb") as f:
        if f.seek(0, 2) == 0:
            return True
        f.seek(-1, 2)
        return f.read(1) == b"\n"


def read_events(path: Path) -> list[PhaseEvent]:
    """Every event in a phase log, in file order (duplicates, if any, included)."""
    return [
        PhaseEvent.model_validate_json(line)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
