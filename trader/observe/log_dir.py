"""The phase log files of one directory, read incrementally: what every worker writing
there (this one's earlier runs, dead workers, live ones) has appended since the last look.

Only complete lines count: a line still being written (or the fragment a killed process
left) is read again once it ends, or never. Each look costs one ``stat`` per file; bytes
are read only from files that grew.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class LogDirectory:
    """Tails every ``*.jsonl`` file in ``directory`` except ``own`` (after the first look,
    which reads ``own`` too: a fixed ``PHASE_LOG_FILE`` keeps its lines across restarts)."""

    def __init__(self, directory: Path, *, own: Path) -> None:
        self.directory = directory
        self._own = own.name
        self._files: dict[str, tuple[int, int]] = {}  # name -> (bytes consumed, size seen)
        self._first = True

    def new_lines(self) -> Iterator[bytes]:
        """Complete lines appended since the last call (every line on the first), files
        oldest first: the index then forgets the oldest runs first."""
        first, self._first = self._first, False
        try:
            entries = [
                e
                for e in os.scandir(self.directory)
                if e.name.endswith(".jsonl") and (first or e.name != self._own) and e.is_file()
            ]
            sized = sorted((e.stat().st_mtime, e.name, e.stat().st_size) for e in entries)
        except OSError as exc:  # the directory is gone or unreadable: nothing new to see
            log.warning("phase log directory %s: %s", self.directory, exc)
            return
        for _, name, size in sized:
            consumed, seen = self._files.get(name, (0, 0))
            if size == seen:
                continue
            if size < consumed:  # truncated or replaced: read it again (keys are idempotent)
                consumed = 0
            consumed = yield from self._read(name, consumed, size)
            self._files[name] = (consumed, size)

    def _read(self, name: str, offset: int, size: int) -> Generator[bytes, None, int]:
        """Lines between ``offset`` and ``size``; returns the offset after the last newline."""
        try:
            with open(self.directory / name, "rb") as f:
                f.seek(offset)
                rest = b""
                while offset + len(rest) < size:
                    chunk = f.read(min(_CHUNK, size - offset - len(rest)))
                    if not chunk:
                        break
                    data = rest + chunk
                    end = data.rfind(b"\n") + 1
                    yield from data[:end].splitlines()
                    offset += end
                    rest = data[end:]
        except OSError as exc:  # deleted meanwhile, or unreadable: skip it this time
            log.warning("phase log %s: %s", name, exc)
        return offset
