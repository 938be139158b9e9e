"""Operator requests to a running legacy engine: ``starter.py force-exit/pause/resume/
reconcile/stop`` in legacy mode.

The engine holds an exclusive lock on its state; the CLI needs none. It inserts a request
into a small SQLite file of its own, ``<data_dir>/legacy_requests.sqlite``; the engine polls
it every second, takes each pending request (``pending`` -> ``taken``, one UPDATE: taken
once), applies it to its symbols, and writes the answer (``done``). The CLI waits for the
answer; if no engine takes it in time it withdraws the request (``pending`` -> ``withdrawn``,
again one UPDATE: exactly one of the two wins), so a force exit never fires hours later when
an engine starts.

=================  ======  ===============================================================
column             type    meaning
=================  ======  ===============================================================
id                 TEXT    request id (uuid4 hex; primary key: applied once per id)
kind               TEXT    ``force_exit``, ``pause``, ``resume``, ``reconcile``, ``stop``
symbols            TEXT    JSON list of symbols (empty: every symbol of the engine)
reason             TEXT    the operator's reason (force exit, reconcile)
close_positions    INTEGER stop: sell held positions first (0/1)
status             TEXT    ``pending``, ``taken``, ``done``, ``withdrawn``
answers            TEXT    JSON list of ``Answer`` (once done)
created_ts         REAL    epoch seconds of the request
done_ts            REAL    epoch seconds of the answer
=================  ======  ===============================================================
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict

REQUESTS_FILE = "legacy_requests.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS legacy_requests (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    symbols TEXT NOT NULL,
    reason TEXT NOT NULL,
    close_positions INTEGER NOT NULL,
    status TEXT NOT NULL,
    answers TEXT,
    created_ts REAL NOT NULL,
    done_ts REAL
);
"""


def requests_path(data_dir: Path) -> Path:
    return data_dir / REQUESTS_FILE


class Kind(StrEnum):
    FORCE_EXIT = "force_exit"
    PAUSE = "pause"
    RESUME = "resume"
    RECONCILE = "reconcile"
    STOP = "stop"


class Request(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    kind: Kind
    symbols: tuple[str, ...] = ()
    reason: str = ""
    close_positions: bool = False


class Answer(BaseModel):
    """What the engine did with a request for one symbol."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    accepted: bool
    phase: str = ""
    detail: str = ""


@contextmanager
def _db(path: Path) -> Iterator[sqlite3.Connection]:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        yield db
    finally:
        db.close()


def submit(
    path: Path,
    kind: Kind,
    symbols: list[str] | tuple[str, ...] = (),
    *,
    reason: str = "",
    close_positions: bool = False,
) -> Request:
    """Queue a request for the engine; returns it (its id is what ``wait`` waits for)."""
    req = Request(
        id=uuid.uuid4().hex,
        kind=kind,
        symbols=tuple(symbols),
        reason=reason,
        close_positions=close_positions,
    )
    with _db(path) as db:
        db.execute(
            "INSERT INTO legacy_requests VALUES (?, ?, ?, ?, ?, 'pending', NULL, ?, NULL)",
            (req.id, kind.value, json.dumps(list(symbols)), reason, int(close_positions),
             time.time()),
        )  # fmt: skip
    return req


def _answers(db: sqlite3.Connection, request_id: str) -> tuple[str, list[Answer] | None]:
    row = db.execute(
        "SELECT status, answers FROM legacy_requests WHERE id = ?", (request_id,)
    ).fetchone()
    if row is None:
        raise KeyError(request_id)
    status, answers = row
    if status != "done":
        return status, None
    return status, [Answer.model_validate(a) for a in json.loads(answers)]


def wait(
    path: Path, request_id: str, *, timeout_s: float, alive: bool = True, poll_s: float = 0.2
) -> list[Answer] | None:
    """The engine's answers; None if no engine took the request within ``timeout_s`` (at
    once when ``alive`` is False): it is then withdrawn, never applied later. A request the
    engine took and did not answer within another ``timeout_s`` (it died meanwhile) raises
    ``TimeoutError``: it may have been applied."""
    deadline = time.monotonic() + (timeout_s if alive else 0)
    with _db(path) as db:
        while True:
            status, answers = _answers(db, request_id)
            if answers is not None:
                return answers
            if status == "taken" and time.monotonic() >= deadline + timeout_s:
                raise TimeoutError(
                    f"the engine took request {request_id} but did not answer within "
                    f"{2 * timeout_s:g}s (did it stop?); see `starter.py status` and its log"
                )
            if status == "pending" and time.monotonic() >= deadline:
                withdrawn = db.execute(
                    "UPDATE legacy_requests SET status = 'withdrawn', done_ts = ? "
                    "WHERE id = ? AND status = 'pending'",
                    (time.time(), request_id),
                ).rowcount
                if withdrawn:
                    return None
                continue  # taken meanwhile: its answer follows
            time.sleep(poll_s)


class RequestQueue:
    """The engine's side: take pending requests (each once), answer them."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def take(self) -> list[Request]:
        if not self.path.exists():
            return []
        out = []
        with _db(self.path) as db:
            rows = db.execute(
                "SELECT id, kind, symbols, reason, close_positions FROM legacy_requests "
                "WHERE status = 'pending' ORDER BY created_ts, id"
            ).fetchall()
            for rid, kind, symbols, reason, close in rows:
                taken = db.execute(
                    "UPDATE legacy_requests SET status = 'taken' WHERE id = ? AND status = "
                    "'pending'",
                    (rid,),
                ).rowcount
                if taken:
                    out.append(
                        Request(
                            id=rid,
                            kind=Kind(kind),
                            symbols=tuple(json.loads(symbols)),
                            reason=reason,
                            close_positions=bool(close),
                        )
                    )
        return out

    def answer(self, request_id: str, answers: list[Answer]) -> None:
        with _db(self.path) as db:
            db.execute(
                "UPDATE legacy_requests SET status = 'done', answers = ?, done_ts = ? "
                "WHERE id = ? AND status = 'taken'",
                (json.dumps([a.model_dump() for a in answers]), time.time(), request_id),
            )


def engine_alive(lock_path: Path) -> bool:
    """Whether the pid written in the engine's lock file is a live process (no lock is
    taken: a starting engine must never find its lock held by a reader). A stale or reused
    pid only makes the caller wait its timeout."""
    try:
        pid = int(lock_path.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
