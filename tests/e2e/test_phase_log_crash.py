"""The phase log loses no line on a crash: real worker processes, all writing to one log
directory, are SIGKILLed again and again while the symbols trade, each time just after a
transition. Every other kill takes one worker (the survivor takes its workflows over and
replays them), the others take all of them (the replacements replay everything).
Afterwards the directory's files hold each transition of the final histories exactly once.

The first worker's "disk" loses every line (its log is a pipe nobody reads): the lines of
the transitions it made come back only through the replays of the workers that take its
workflows over after it is killed.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.helpers import (
    kill,
    query_state,
    run,
    spawn,
    terminate_queue,
    wait_state,
    write_config,
)
from trader import contracts as c
from trader.core import ids
from trader.core.state import CoinState
from trader.observe.events import PhaseEvent
from trader.observe.phase_log import read_events

pytestmark = pytest.mark.e2e

SYMBOLS = ("ADA/USDT", "DOGE/USDT", "LTC/USDT")  # no other e2e test uses them
KILLS = 4


async def after_a_transition(client, wf_ids: list[str]) -> None:
    """Return as soon as a symbol is seen to make a transition (from now on)."""
    seen: dict[str, int] = {}

    async def count(wf_id: str) -> int | None:
        try:
            state = await asyncio.wait_for(query_state(client, wf_id), 2)
        except TimeoutError:  # its worker is dead: the query waits for a takeover
            return None
        return len(state.phase_history) if state else None

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answers = await asyncio.gather(*map(count, wf_ids))
        counts = {w: n for w, n in zip(wf_ids, answers, strict=True) if n is not None}
        moved = any(n > seen.get(w, n) for w, n in counts.items())
        seen.update(counts)
        if moved:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no transition for 60 s: {seen}")


def log_lines(directory: Path) -> list[PhaseEvent]:
    return [e for f in sorted(directory.glob("*.jsonl")) for e in read_events(f)]


def compare(finals: list[CoinState], lines: list[PhaseEvent]) -> dict[str, int]:
    """Counts of the comparison, and the assertions a complete, duplicate-free log passes.

    A line superseded by a retried task that took another edge (same key, other edge,
    earlier ``ts``) is the documented exception: readers keep the latest line per key.
    """
    keys = Counter((e.run_id, e.seq) for e in lines)
    same_edge = Counter((e.run_id, e.seq, e.src, e.dst, e.trigger) for e in lines)
    latest: dict[tuple[str, int], PhaseEvent] = {}
    for e in lines:
        key = (e.run_id, e.seq)
        if key not in latest or e.ts >= latest[key].ts:
            latest[key] = e
    return {
        "transitions": sum(len(s.phase_history) for s in finals),
        "distinct_keys": len(keys),
        "lines": len(lines),
        "superseded": len(lines) - len(keys),
        "same_edge_duplicates": sum(n - 1 for n in same_edge.values()),
        "missing": sum((Counter((s.symbol, r.ts, r.src.value, r.dst.value, r.trigger.value)
                                for s in finals for r in s.phase_history)
                        - Counter((e.symbol, e.ts, e.src, e.dst, e.trigger)
                                  for e in latest.values())).values()),
    }


def lossy_log(directory: Path) -> tuple[Path, int]:
    """A log "file" that swallows every line: a pipe (not a ``*.jsonl`` file, so no worker
    reads it) with a reader that never reads; returns it and the reader's descriptor."""
    directory.mkdir(parents=True)
    pipe = directory / "lost.pipe"
    os.mkfifo(pipe)
    return pipe, os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)


def swallowed(reader: int) -> int:
    """How many lines went into the lossy log."""
    try:
        return os.read(reader, 1 << 20).count(b"\n")
    except BlockingIOError:
        return 0


async def test_sigkilled_workers_lose_no_phase_log_line(dev_env, tmp_path):
    client = dev_env.client
    address = client.service_client.config.target_host
    queue = f"plog-{uuid.uuid4().hex[:6]}"
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "cfg.toml", address=address, data_dir=data, queue=queue,
                       watchlist=SYMBOLS, extra="phase_history_limit = 10000")
    started = run("starter.py", "--config", str(cfg), "start", "--no-worker")
    assert started.returncode == 0, started.stderr
    out = tmp_path / "workers.log"
    rng = random.Random(8)
    pipe, reader = lossy_log(data / "logs")

    def worker(**env: str):  # noqa: ANN202
        return spawn("worker.py", "--config", str(cfg), log=out, env=env)

    workers = [worker(PHASE_LOG_FILE=str(pipe))]  # alone at first: it gets every symbol
    wf_ids = [ids.workflow_id_for("paper", s) for s in SYMBOLS]
    try:
        for wf_id in wf_ids:
            await wait_state(client, wf_id, lambda s: len(s.phase_history) >= 3, timeout=60,
                             what="trading to start")
        alive = [worker(), worker()]
        workers += alive
        await after_a_transition(client, wf_ids)
        kill(workers[0])
        lost = swallowed(reader)
        for n in range(KILLS):
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            await after_a_transition(client, wf_ids)
            victims = alive if n % 2 else [alive[rng.randrange(len(alive))]]
            for victim in victims:
                kill(victim)
            alive = [w for w in alive if w not in victims]
            while len(alive) < 2:
                alive.append(worker())
                workers.append(alive[-1])
        await asyncio.sleep(3)
        for wf_id in wf_ids:
            await client.get_workflow_handle(wf_id).signal(
                "shutdown", c.ShutdownRequest(close_position=True))
        finals = [await asyncio.wait_for(
            client.get_workflow_handle(wf_id, result_type=CoinState).result(), timeout=60)
            for wf_id in wf_ids]
        for w in alive:
            kill(w, signal.SIGTERM)  # graceful: the survivors flush and close their logs
    finally:
        for w in workers:
            kill(w)
        os.close(reader)
        await terminate_queue(client, queue)

    counts = compare(finals, log_lines(data / "logs"))
    print(f"phase log after {KILLS + 1} SIGKILLs, {lost} lines lost with the first worker:",
          counts)
    assert counts["transitions"] >= 30, counts  # the symbols really traded meanwhile
    assert lost >= len(SYMBOLS) * 3, lost  # what only replays can give back
    assert counts["missing"] == 0, counts
    assert counts["same_edge_duplicates"] == 0, counts
    assert counts["distinct_keys"] == counts["transitions"] \
        == counts["lines"] - counts["superseded"], counts
