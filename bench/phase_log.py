"""What the phase log's crash safety costs, measured with the real parts (no Temporal):

1. index memory (trader/observe/log_index.py): keys per MB for runs of 10, 100 and 1,000
   transitions, next to a dict of tuples (what the sink remembered with before), and the
   measured memory over the estimate its bound applies to (``KeyIndex.bytes``);
2. startup scan: a log directory of ``--lines`` real PhaseEvent lines in ``--files``
   files, indexed by a new PhaseLog until ``wait_ready``: seconds, lines/s, MB/s;
3. a look at the other workers' files (before every write): microseconds per look, for a
   directory of 1 to 1,000 files;
4. the listener, on the workflow thread: microseconds per new line (queued, written by the
   writer thread and waited for) and per line the directory already holds (dropped in
   memory: what a replay after a restart costs).

    python -m bench.phase_log [--lines 1000000] [--files 20] [--events 20000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from bench.observability import _event
from trader.observe.log_dir import LogDirectory
from trader.observe.log_index import KeyIndex
from trader.observe.phase_log import PhaseLog

EDGES = [
    ("idle", "entry_eval", "drop_detected"),
    ("entry_eval", "place_buy", "guards_ok"),
    ("place_buy", "wait_fill", "order_placed"),
    ("wait_fill", "position", "filled"),
]


def _run_id(n: int) -> str:
    return f"{n:08x}-0000-4000-8000-{n:012x}"  # a run id's shape and length


def _allocated(build: Callable[[], object]) -> tuple[int, object]:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    built = build()
    size = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return size, built


def index_memory(keys: int = 1_000_000) -> dict[str, object]:
    out: dict[str, object] = {}
    for per_run in (10, 100, 1000):

        def build(per_run: int = per_run) -> KeyIndex:
            index = KeyIndex(max_bytes=1 << 40)
            for n in range(keys // per_run):
                run_id = _run_id(n)
                for seq in range(1, per_run + 1):
                    index.put(run_id, seq, EDGES[seq % len(EDGES)])
            return index

        size, index = _allocated(build)
        assert isinstance(index, KeyIndex)
        out[f"keys_per_mb_runs_of_{per_run}"] = round(keys / (size / 1e6))
        out[f"measured_over_estimate_runs_of_{per_run}"] = round(size / index.bytes, 2)

    def build_dict() -> dict[tuple[str, int], tuple[str, str, str]]:
        return {(_run_id(n // 100), n % 100 + 1): EDGES[n % len(EDGES)] for n in range(keys)}

    size, _ = _allocated(build_dict)
    out["dict_of_tuples_keys_per_mb_runs_of_100"] = round(keys / (size / 1e6))
    return out


def write_log(directory: Path, lines: int, files: int) -> int:
    """``lines`` real lines in runs of 100 transitions; returns the bytes written."""
    template = _event(999_999).model_copy(update={"run_id": "RUN-ID"}).model_dump_json()
    head, rest = template.split('"run_id":"RUN-ID","seq":999999')
    per_file, total = lines // files, 0
    for f in range(files):
        with (directory / f"phase_events_{f:04d}.jsonl").open("w") as out:
            chunk = [
                f'{head}"run_id":"{_run_id(n // 100)}","seq":{n % 100 + 1}{rest}\n'
                for n in range(f * per_file, (f + 1) * per_file)
            ]
            total += out.write("".join(chunk))
    return total


def startup_scan(tmp: Path, lines: int, files: int) -> dict[str, float]:
    directory = tmp / "scan"
    directory.mkdir()
    size = write_log(directory, lines, files)
    t0 = time.perf_counter()
    log = PhaseLog(directory / "new.jsonl", max_index_bytes=1 << 40)
    assert log.wait_ready(600)
    seconds = time.perf_counter() - t0
    keys = log.indexed_keys
    log.close()
    return {
        "lines": lines,
        "files": files,
        "mb": round(size / 1e6, 1),
        "keys_indexed": keys,
        "seconds": round(seconds, 2),
        "lines_per_s": round(lines / seconds),
        "mb_per_s": round(size / 1e6 / seconds, 1),
    }


def look_cost(tmp: Path) -> dict[str, float]:
    out = {}
    for files in (1, 10, 100, 1000):
        directory = tmp / f"look-{files}"
        directory.mkdir()
        for f in range(files):
            (directory / f"w{f}.jsonl").write_text(_event(f).model_dump_json() + "\n")
        logs = LogDirectory(directory, own=directory / "own.jsonl")
        list(logs.new_lines())
        t0 = time.perf_counter()
        for _ in range(200):
            list(logs.new_lines())
        out[f"us_per_look_{files}_files"] = round((time.perf_counter() - t0) / 200 * 1e6, 1)
    return out


def listener_cost(tmp: Path, n: int) -> dict[str, float]:
    directory = tmp / "listener"
    events = [_event(seq) for seq in range(1, n + 1)]

    def per_call(name: str) -> float:
        log = PhaseLog(directory / name)
        assert log.wait_ready(5)
        t0 = time.perf_counter()
        for e in events:
            log(e)
        seconds = (time.perf_counter() - t0) / n
        log.close()
        return seconds

    new_line = per_call("first.jsonl")
    held = per_call("second.jsonl")  # a restart replaying them: the lines are all there
    assert (directory / "second.jsonl").read_text() == ""
    return {
        "us_per_new_line": round(new_line * 1e6, 1),
        "us_per_line_already_held": round(held * 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        result = {
            "index_memory": index_memory(),
            "listener": listener_cost(tmp, args.events),
            "look": look_cost(tmp),
            "startup_scan": startup_scan(tmp, args.lines, args.files),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
