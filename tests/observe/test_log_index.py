"""The key index: what a log holds, ~2 bytes a key, bounded by forgetting whole runs; and
the line parser's fast path agrees with JSON on real lines and falls back on any other."""

from __future__ import annotations

import json

from tests.observe.sample import event
from trader.observe.log_index import RUN_BYTES, KeyIndex, parse_key

EDGE = ("warmup", "idle", "warmed_up")


def test_keys_edges_and_supersession():
    index = KeyIndex(max_bytes=1 << 20)
    index.put("r1", 2, EDGE)
    assert index.get("r1", 2) == EDGE and index.has("r1", 2, EDGE)
    assert index.get("r1", 1) is None and index.get("r1", 3) is None
    assert index.get("r2", 2) is None
    index.put("r1", 2, ("idle", "error", "failed"))  # a retried task took another edge
    assert not index.has("r1", 2, EDGE)
    assert len(index) == 2 and index.runs == 1  # seq 1 is a slot too (dense by seq)


def test_least_recently_used_runs_are_forgotten_whole():
    index = KeyIndex(max_bytes=2 * RUN_BYTES + 8)  # two runs of two keys
    index.put("old", 2, EDGE)
    index.put("kept", 1, EDGE)
    index.get("old", 2)  # a replay touched it: now the most recent
    index.put("new", 2, EDGE)  # a third run: the least recently used one goes
    assert index.get("kept", 1) is None
    assert index.has("old", 2, EDGE) and index.has("new", 2, EDGE)
    assert len(index) == 4 and index.bytes <= index.max_bytes


def test_nonsense_is_left_unindexed_rather_than_costing_memory():
    index = KeyIndex(max_bytes=1 << 20)
    index.put("r1", 10**9, EDGE)
    index.put("r1", 0, EDGE)
    assert len(index) == 0 and index.runs == 0


def test_a_run_longer_than_the_bound_is_still_held():
    index = KeyIndex(max_bytes=10)
    for seq in range(1, 31):
        index.put("long", seq, EDGE)
    assert all(index.has("long", seq, EDGE) for seq in range(1, 31))


def test_fast_path_agrees_with_json_and_other_lines_fall_back():
    line = event(7, run_id="r-9", dst="error", trigger="failed").model_dump_json()
    expected = ("r-9", 7, ("warmup", "error", "failed"))
    assert parse_key(line.encode()) == expected
    d = json.loads(line)
    reordered = json.dumps({k: d[k] for k in sorted(d)}).encode()  # another writer's order
    assert parse_key(reordered) == expected
    # A note quoting a key cannot fool the fast path: inside a string quotes are escaped.
    tricky = event(7, run_id="r-9").model_copy(
        update={"reason": '"run_id":"evil","seq":1 "src":"a","dst":"b","trigger":"c"'}
    )
    assert parse_key(tricky.model_dump_json().encode()) == ("r-9", 7, EDGE)
    for junk in (
        b"",
        b"not json",
        b"{}",
        b'{"run_id": 1, "seq": "x"}',
        b"[1, 2]",
        line.encode()[:40],
    ):
        assert parse_key(junk) is None
