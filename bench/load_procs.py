"""The load bench's processes: the dev server and worker processes, and their CPU and RSS
read from /proc (psutil is not a dependency)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a live process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _waited_s(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU
    (``/proc/<pid>/task/*/schedstat``, second field): what a shared machine's load costs it."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, IndexError, ValueError):  # a thread just ended
            total += int(task.read_text().split()[1])
    return total / 1e9


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (the dev server may run helpers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = st[0]
    tree, frontier = [root], [root]
    while frontier:
        frontier = [p for p, pp in parents.items() if pp in frontier]
        tree += frontier
    return tree


@dataclass
class Sampled:
    """CPU and RSS of one process tree over the measured window."""

    name: str
    pid: int
    cpu: list[tuple[float, float]] = field(default_factory=list)
    """(monotonic time, CPU seconds so far) samples."""
    rss_mb: list[float] = field(default_factory=list)
    waited_s: list[float] = field(default_factory=list)
    """Run-queue wait so far (threads runnable, no CPU free), per sample."""

    def sample(self) -> None:
        pids = _tree(self.pid)
        self.cpu.append((time.monotonic(), self.cpu_s(pids)))
        self.rss_mb.append(sum(_rss_mb(p) for p in pids))
        self.waited_s.append(sum(_waited_s(p) for p in pids))

    def cpu_s(self, pids: list[int] | None = None) -> float:
        """CPU seconds of the tree so far (not recorded as a sample)."""
        return sum(st[1] for p in pids or _tree(self.pid) if (st := _stat(p)) is not None)

    def cpu_s_at(self, when: float) -> float:
        """CPU seconds at the first sample at or after ``when`` (monotonic), else the last."""
        return next((c for t, c in self.cpu if t >= when), self.cpu[-1][1])

    def cpu_pct(self, *, since: int = 0) -> float:
        """Average % of one core between sample ``since`` and the last."""
        (t0, c0), (t1, c1) = self.cpu[since], self.cpu[-1]
        return round(100 * (c1 - c0) / max(t1 - t0, 1e-9), 1)

    def _wait_pct(self) -> float:
        ran = self.cpu[-1][1] - self.cpu[0][1]
        waited = self.waited_s[-1] - self.waited_s[0]
        return round(100 * waited / max(ran + waited, 1e-9), 1)

    def summary(self) -> dict[str, float]:
        half = len(self.cpu) // 2
        return {
            "cpu_pct": self.cpu_pct(),
            "cpu_pct_second_half": self.cpu_pct(since=half),
            # Of what the tree ran and waited, the share spent waiting for a CPU (threads
            # summed): near 0 on a quiet machine; 50 means it waited as long as it ran.
            "cpu_wait_pct": self._wait_pct(),
            "rss_mb_max": round(max(self.rss_mb), 1),
            "rss_mb_last": round(self.rss_mb[-1], 1),
        }


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """A Python process of this checkout (``worker.py`` or a module), in its own session."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes], *, timeout: float = 30) -> None:
    """SIGTERM (workers finish their tasks), SIGKILL when that takes too long."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
