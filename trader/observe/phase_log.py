"""The JSONL phase log: append-only, one line per transition (a ``PhaseEvent``).

Writes go to an in-memory buffer (``PHASE_LOG_BUFFER_SIZE``, 8 KB by default) so a
transition costs no system call; a background thread flushes it at least every second, and
``close`` flushes the rest on shutdown. A worker killed with SIGKILL loses at most the last
second of lines: the workflow history still has every transition (docs/debugging.md).
"""

from __future__ import annotations

import threading
from pathlib import Path

from trader.core.errors import ConfigError
from trader.observe.events import PhaseEvent


class PhaseLog:
    """A sink listener appending each event as one JSON line to ``path``."""

    def __init__(self, path: Path, *, buffer_size: int = 8192, flush_interval_s: float = 1.0
                 ) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8", buffering=buffer_size)
        except OSError as exc:
            raise ConfigError(f"PHASE_LOG_FILE: cannot append to {path}: {exc}") from None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, args=(flush_interval_s,),
                                         name="phase-log-flush", daemon=True)
        self._flusher.start()

    def __call__(self, event: PhaseEvent) -> None:
        line = event.model_dump_json() + "\n"
        with self._lock:
            if not self._file.closed:
                self._file.write(line)

    def _flush_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()

    def close(self) -> None:
        """Stop the flusher and write out everything buffered (idempotent)."""
        self._stop.set()
        self._flusher.join(timeout=5)
        with self._lock:
            if not self._file.closed:
                self._file.close()


def read_events(path: Path) -> list[PhaseEvent]:
    """Every event in a phase log, in file order (duplicates, if any, included)."""
    return [PhaseEvent.model_validate_json(line)
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
