"""The JSONL phase log: append-only, one line per transition, buffered (8 KB by default),
flushed at least every second and on close."""

from __future__ import annotations

import threading
from pathlib import Path

from trader.observe.events import PhaseEvent


class PhaseLog:
    def __init__(self, path: Path, *, buffer_size: int = 8192, flush_interval_s: float = 1.0
                 ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("a", encoding="utf-8", buffering=buffer_size)
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
        self._stop.set()
        with self._lock:
            self._file.close()


def read_events(path: Path) -> list[PhaseEvent]:
    return [PhaseEvent.model_validate_json(line) for line in path.read_text().splitlines()
            if line.strip()]


