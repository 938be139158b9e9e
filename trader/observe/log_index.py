"""Which transitions are already delivered or written: ``(run_id, seq) -> edge``, compact.

The sink remembers what its process delivered and the phase log what its directory's files
hold: hundreds of thousands of keys for a busy worker with months of logs. A dict of tuples
costs ~150 bytes a key; here a run's keys are one array of 2-byte edge numbers indexed by
``seq`` (it counts from 1 within a run, so the array is dense), and the few distinct edges
(the transition table's) are stored once: ~2 bytes a key plus ~270 bytes a run
(measured: docs/benchmarks.md).

Memory is bounded by ``max_bytes`` (that estimate, whatever the runs' lengths): past it the
least recently used runs are forgotten whole. Only a live workflow's current run is ever
replayed, and it is recent (runs continue as new after at most ~4,096 history events), so
old runs are the safe ones to forget.
"""

from __future__ import annotations

import json
import re
from array import array
from collections import OrderedDict

Edge = tuple[str, str, str]
"""(src, dst, trigger): a retried workflow task may take another edge under the same key."""

_MAX_SEQ = 1 << 20  # a run has < 51,200 history events: a larger seq is not a transition
_MAX_EDGES = 0xFFFF  # what an array("H") slot can name; the table has ~40 edges
RUN_BYTES = 270  # a run's id, array and ordered-dict entry (bench/phase_log.py)

# The PhaseEvent model's field order (src, dst, trigger ... run_id, seq), as pydantic
# writes it: ~8x faster than json.loads, which remains the fallback for any other line.
# A quote inside a JSON string is escaped, so these keys cannot match inside a value.
_FAST_LINE = re.compile(
    rb'"src":"([^"\\]*)","dst":"([^"\\]*)","trigger":"([^"\\]*)"'
    rb'.*"run_id":"([^"\\]*)","seq":(\d+)'
)


def parse_key(line: bytes) -> tuple[str, int, Edge] | None:
    """``(run_id, seq, edge)`` of one JSONL line; None for anything not a phase event."""
    m = _FAST_LINE.search(line)
    if m is not None:
        src, dst, trigger, run_id, seq = m.groups()
        return run_id.decode(), int(seq), (src.decode(), dst.decode(), trigger.decode())
    try:
        d = json.loads(line)
        key = (d["run_id"], d["seq"], (d["src"], d["dst"], d["trigger"]))
    except (ValueError, TypeError, KeyError):
        return None
    ok = (
        isinstance(key[0], str)
        and isinstance(key[1], int)
        and all(isinstance(part, str) for part in key[2])
    )
    return key if ok else None


class KeyIndex:
    """``(run_id, seq) -> edge`` in about ``max_bytes`` of memory at most (not thread-safe:
    its owner holds a lock)."""

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._runs: OrderedDict[str, array[int]] = OrderedDict()  # least recently used first
        self._edges: list[Edge] = [("", "", "")]  # edge number 0 means "no key"
        self._edge_numbers: dict[Edge, int] = {}
        self._slots = 0

    def __len__(self) -> int:
        """Keys held (slots of the runs' arrays: seq gaps count too)."""
        return self._slots

    @property
    def runs(self) -> int:
        return len(self._runs)

    @property
    def bytes(self) -> int:
        """The memory estimate the bound applies to."""
        return len(self._runs) * RUN_BYTES + self._slots * 2

    def get(self, run_id: str, seq: int) -> Edge | None:
        run = self._runs.get(run_id)
        if run is None or not 0 < seq <= len(run) or not run[seq - 1]:
            return None
        self._runs.move_to_end(run_id)
        return self._edges[run[seq - 1]]

    def has(self, run_id: str, seq: int, edge: Edge) -> bool:
        """Whether this key is held with this very edge (another edge supersedes it)."""
        return self.get(run_id, seq) == edge

    def put(self, run_id: str, seq: int, edge: Edge) -> None:
        if not 0 < seq <= _MAX_SEQ:
            return  # not a transition's seq: left unindexed (at worst written again)
        number = self._edge_numbers.get(edge)
        if number is None:
            if len(self._edges) > _MAX_EDGES:
                return  # not a transition table's edge: likewise
            number = self._edge_numbers[edge] = len(self._edges)
            self._edges.append(edge)
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = array("H")
        else:
            self._runs.move_to_end(run_id)
        if seq > len(run):
            grow = seq - len(run)
            run.frombytes(bytes(grow * run.itemsize))
            self._slots += grow
        run[seq - 1] = number
        while self.bytes > self.max_bytes and len(self._runs) > 1:
            _, oldest = self._runs.popitem(last=False)
            self._slots -= len(oldest)
