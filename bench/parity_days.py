"""The parity bench over the whole data, one UTC day per run, several runs at once; the
per-day and per-pair tables of docs/migration.md ("Results over the whole data").

    python -m bench.parity_days                                    # 2018-01-10 .. 01-30, 4 at once
    python -m bench.parity_days --first 2018-01-12 --last 2018-01-13 --jobs 2
    python -m bench.parity_days --summarize logs/day-*.log          # tables from earlier runs

Each day is ``python -m bench.parity --start D --end D+1 --point-ms P`` in its own process
(its own Java test server, engines, exchanges), its output kept in ``--out``. A day starts
flat, as every window does (docs/migration.md, "Against the backtest"), so a trade open at
midnight is ``open at the end`` of one day and not in the next. Why 500 ms a point and 4 at
once: docs/migration.md, "Running it faster". Exits 1 on any difference or failed run.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from bench.parity import PAIRS

FIRST, LAST = date(2018, 1, 10), date(2018, 1, 30)
"""The BTC pairs' data: 2018-01-10 04:55 to 2018-01-30 04:50 (UTC)."""

_ROW = re.compile(
    r"^\| (?P<pair>[A-Z]+/[A-Z]+) \| (?P<legacy>\d+) \| (?P<fsm>\d+) \| (?P<same>yes|NO) \|"
)
_END = re.compile(
    r"^(?P<points>\d+) points x (?P<ms>\d+) ms; wall (?P<wall>\d+) s; "
    r"trades legacy (?P<legacy>\d+) / FSM (?P<fsm>\d+)"
)


@dataclass
class Day:
    """One run's table, as bench.parity printed it."""

    name: str
    rows: dict[str, tuple[int, int, bool]] = field(default_factory=dict)
    """pair -> (legacy trades, FSM trades, identical)."""
    points: int = 0
    wall_s: int = 0
    complete: bool = False
    """The run printed its closing line (a crash or a kill leaves a table without it)."""

    @property
    def identical(self) -> bool:
        return self.complete and all(same for _, _, same in self.rows.values())


def parse(name: str, text: str) -> Day:
    day = Day(name)
    for line in text.splitlines():
        if m := _ROW.match(line):
            day.rows[m["pair"]] = (int(m["legacy"]), int(m["fsm"]), m["same"] == "yes")
        elif m := _END.match(line):
            day.points, day.wall_s, day.complete = int(m["points"]), int(m["wall"]), True
    return day


def tables(days: list[Day]) -> list[str]:
    """One row per day, then one per pair over all days."""
    out = ["| day | points | legacy trades | FSM trades | identical | wall s |"]
    out.append("|---|---:|---:|---:|---|---:|")
    for d in days:
        legacy = sum(r[0] for r in d.rows.values())
        fsm = sum(r[1] for r in d.rows.values())
        verdict = "yes" if d.identical else ("NO" if d.complete else "run failed")
        out.append(f"| {d.name} | {d.points} | {legacy} | {fsm} | {verdict} | {d.wall_s} |")
    out += ["", "| pair | legacy trades | FSM trades | days identical |", "|---|---:|---:|---|"]
    pairs = sorted({p for d in days for p in d.rows})
    for p in pairs:
        rows = [d.rows[p] for d in days if p in d.rows]
        same = sum(1 for d in days if p in d.rows and d.complete and d.rows[p][2])
        n_legacy, n_fsm = sum(r[0] for r in rows), sum(r[1] for r in rows)
        out.append(f"| {p} | {n_legacy} | {n_fsm} | {same} / {len(rows)} |")
    return out


def windows(first: date, last: date) -> list[tuple[str, str]]:
    """(start, end) of each UTC day from ``first`` to ``last``, both included."""
    days = (first + timedelta(days=i) for i in range((last - first).days + 1))
    return [
        (f"{d.isoformat()}T00:00", f"{(d + timedelta(days=1)).isoformat()}T00:00") for d in days
    ]


async def _run_day(start: str, end: str, point_ms: int, out: Path, gate: asyncio.Semaphore) -> Day:
    log = out / f"day-{start[:10]}.log"
    async with gate:
        with log.open("wb") as f:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.parity", "--start", start, "--end", end,
                "--point-ms", str(point_ms), "--symbols", *[f"{p}/BTC" for p in PAIRS],
                stdout=f, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            await proc.wait()
    print(f"{start[:10]} done (exit {proc.returncode})", file=sys.stderr)
    return parse(start[:10], log.read_text())


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--first", type=date.fromisoformat, default=FIRST)
    ap.add_argument("--last", type=date.fromisoformat, default=LAST)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--point-ms", type=int, default=500)
    ap.add_argument("--out", type=Path, default=Path("parity-days"))
    ap.add_argument("--summarize", nargs="+", type=Path, help="only tabulate these logs")
    args = ap.parse_args(argv)
    if args.summarize:
        days = [parse(p.stem.removeprefix("day-"), p.read_text()) for p in sorted(args.summarize)]
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        gate, started = asyncio.Semaphore(args.jobs), time.monotonic()
        days = await asyncio.gather(
            *(
                _run_day(s, e, args.point_ms, args.out, gate)
                for s, e in windows(args.first, args.last)
            )
        )
        print(f"wall {time.monotonic() - started:.0f} s, {args.jobs} at once", file=sys.stderr)
    print("\n".join(tables(days)))
    return 0 if days and all(d.identical for d in days) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
