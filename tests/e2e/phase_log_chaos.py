"""The phase log chaos scenario, shared by the e2e test and the longer campaign in
``bench/phase_log_chaos.py``: real worker processes, all writing to one log directory,
SIGKILLed again and again while the symbols trade, each time just after a transition.
Every other kill takes one worker (the survivor takes its workflows over and replays
them), the others take all of them (the replacements replay everything).

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

from temporalio.client import Client

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


async def chaos(
    client: Client, tmp: Path, *, symbols: tuple[str, ...], kills: int, seed: int = 8
) -> dict[str, int]:
    """Run the scenario in ``tmp``; the comparison of the final histories with the log."""
    address = client.service_client.config.target_host
    queue = f"plog-{uuid.uuid4().hex[:6]}"
    data = tmp / "data"
    cfg = write_config(
        tmp / "cfg.toml",
        address=address,
        data_dir=data,
        queue=queue,
        watchlist=symbols,
        extra="phase_history_limit = 10000",
    )
    started = run("starter.py", "--config", str(cfg), "start", "--no-worker")
    assert started.returncode == 0, started.stderr
    out = tmp / "workers.log"
    rng = random.Random(seed)
    pipe, reader = lossy_log(data / "logs")

    def worker(**env: str):  # noqa: ANN202
        return spawn("worker.py", "--config", str(cfg), log=out, env=env)

    workers = [worker(PHASE_LOG_FILE=str(pipe))]  # alone at first: it gets every symbol
    wf_ids = [ids.workflow_id_for("paper", s) for s in symbols]
    try:
        for wf_id in wf_ids:
            await wait_state(
                client,
                wf_id,
                lambda s: len(s.phase_history) >= 3,
                timeout=60,
                what="trading to start",
            )
        alive = [worker(), worker()]
        workers += alive
        await after_a_transition(client, wf_ids)
        kill(workers[0])
        lost = swallowed(reader)
        for n in range(kills):
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
                "shutdown", c.ShutdownRequest(close_position=True)
            )
        finals = [
            await asyncio.wait_for(
                client.get_workflow_handle(wf_id, result_type=CoinState).result(), timeout=60
            )
            for wf_id in wf_ids
        ]
        for w in alive:
            kill(w, signal.SIGTERM)  # graceful: the survivors write what is queued
    finally:
        for w in workers:
            kill(w)
        os.close(reader)
        await terminate_queue(client, queue)
    return {
        "sigkills": kills + 1,
        "lost_with_first_worker": lost,
        **compare(finals, log_lines(data / "logs")),
    }


def assert_complete(counts: dict[str, int]) -> None:
    """Each transition of the histories once; no line twice with the same edge."""
    assert counts["missing"] == 0, counts
    assert counts["same_edge_duplicates"] == 0, counts
    assert (
        counts["distinct_keys"]
        == counts["transitions"]
        == counts["lines"] - counts["superseded"] - counts["uncommitted_tail"]
    ), counts


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
    """The counts a complete, duplicate-free log has: ``missing`` and
    ``same_edge_duplicates`` 0, ``distinct_keys == transitions == lines - superseded``.

    Readers keep the newest line per key (``superseded``: a retried task that took another
    edge). ``stale_ts`` counts lines written by a killed worker's attempt whose retry took
    the same edge: one line for the transition, as it should, but with that attempt's
    ``ts``, earlier than the history's.
    """
    keys = Counter((e.run_id, e.seq) for e in lines)
    same_edge = Counter((e.run_id, e.seq, e.src, e.dst, e.trigger) for e in lines)
    latest: dict[tuple[str, int], PhaseEvent] = {}
    for e in lines:
        key = (e.run_id, e.seq)
        if key not in latest or e.ts >= latest[key].ts:
            latest[key] = e

    def unlogged(*, with_ts: bool) -> int:
        """Transitions of the histories with no line (same symbol and edge, and ts)."""

        def ident(symbol: str, ts: float, *edge: str) -> tuple[object, ...]:
            return (symbol, ts, *edge) if with_ts else (symbol, *edge)

        history = Counter(
            ident(s.symbol, r.ts, r.src.value, r.dst.value, r.trigger.value)
            for s in finals
            for r in s.phase_history
        )
        logged = Counter(ident(e.symbol, e.ts, e.src, e.dst, e.trigger) for e in latest.values())
        return (history - logged).total()

    missing = unlogged(with_ts=False)
    return {
        "transitions": sum(len(s.phase_history) for s in finals),
        "distinct_keys": len(keys) - (tail := uncommitted_tail(finals, latest)),
        "uncommitted_tail": tail,
        "lines": len(lines),
        "superseded": len(lines) - len(keys),
        "same_edge_duplicates": sum(n - 1 for n in same_edge.values()),
        "missing": missing,
        "stale_ts": unlogged(with_ts=True) - missing,
    }


def uncommitted_tail(finals: list[CoinState], latest: dict[tuple[str, int], PhaseEvent]) -> int:
    """Lines at the very end of a run that no history holds: an attempt killed (or timed
    out) after writing them, whose retry ended the run with fewer transitions (the
    shutdown signal came first). docs/debugging.md lists them under what the log does not
    cover. Only a run's last lines may be such; one anywhere else stays in the counts."""
    history = Counter(
        (s.symbol, r.src.value, r.dst.value, r.trigger.value)
        for s in finals
        for r in s.phase_history
    )
    extra = Counter(map(_edge, latest.values())) - history
    by_run: dict[str, list[PhaseEvent]] = {}
    for (run_id, _), e in sorted(latest.items()):
        by_run.setdefault(run_id, []).append(e)
    tail = 0
    for events in by_run.values():
        while events and extra[edge := _edge(events[-1])]:
            extra[edge] -= 1
            tail += 1
            events.pop()
    return tail


def _edge(e: PhaseEvent) -> tuple[str, str, str, str]:
    return (e.symbol, e.src, e.dst, e.trigger)


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
