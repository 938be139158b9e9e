"""FSM_MODE=both on the demo (config/demo.toml, paper exchange): what each engine did in a
few minutes on the same market, read from the ledger, the phase logs and the two accounts.

    python -m bench.both_demo --minutes 10                 # the FSM primary (default)
    python -m bench.both_demo --minutes 10 --primary legacy

A real dev server (in memory) and ``starter.py`` as its own process, as an operator runs
it. Prints one JSON object: per engine the trades (exit reasons, net PnL), the orders its
account received, and how many of its entries the other engine also made (same symbol,
within ``--match-s`` seconds), how many trades were identical (amounts, prices, PnL to
the last digit), the CPU seconds the starter process used, and the divergences the
HybridValidator reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import dev_server
from trader.contracts import TradeRecord
from trader.ledger import read_trades

ROOT = Path(__file__).resolve().parents[1]


def _orders(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM orders").fetchone()[0])


def _entries(data: Path) -> dict[str, list[tuple[str, float]]]:
    """Per engine, (symbol, ts) of every buy placed (the phase logs)."""
    out: dict[str, list[tuple[str, float]]] = {"fsm": [], "legacy": []}
    for file in (data / "logs").glob("*.jsonl"):
        for line in file.read_text().splitlines():
            e = json.loads(line)
            if e["src"] == "place_buy" and e["trigger"] == "order_placed":
                out[e.get("engine", "fsm")].append((e["symbol"], e["ts"]))
    return out


def _matched(mine: list[tuple[str, float]], other: list[tuple[str, float]], window: float) -> int:
    return sum(any(s == o and abs(t - u) <= window for o, u in other) for s, t in mine)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="both-demo-") as tmp:
        data = Path(tmp) / "data"
        async with dev_server() as env:
            cfg = Path(tmp) / "demo.toml"
            demo = (ROOT / "config" / "demo.toml").read_text()
            address = env.client.service_client.config.target_host
            top = f'temporal_address = "{address}"\ndata_dir = "{data}"\n'
            cfg.write_text(top + demo)
            log = Path(tmp) / "starter.log"
            proc = subprocess.Popen(
                [sys.executable, "starter.py", "--config", str(cfg)],
                cwd=ROOT,
                stdout=log.open("ab"),
                stderr=subprocess.STDOUT,
                env={**os.environ, "FSM_MODE": "both", "HYBRID_PRIMARY": args.primary},
                start_new_session=True,
            )
            load_start = os.getloadavg()[0]
            await asyncio.sleep(args.minutes * 60)
            cpu = _cpu_seconds(proc.pid)
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=60)
            load_end = os.getloadavg()[0]
        trades = read_trades(data / "ledger.sqlite") if (data / "ledger.sqlite").exists() else []
        entries = _entries(data)
        shadow = "legacy" if args.primary == "fsm" else "fsm"
        out: dict[str, Any] = {
            "minutes": args.minutes,
            "primary": args.primary,
            "exit_code": proc.returncode,
            "starter_cpu_s": cpu,
            "load": [round(load_start, 2), round(load_end, 2)],
        }
        accounts = {
            args.primary: data / "paper.sqlite",
            shadow: data / f"shadow-{shadow}-paper.sqlite",
        }
        for engine in ("fsm", "legacy"):
            mine = [t for t in trades if t.engine == engine]
            other = "legacy" if engine == "fsm" else "fsm"
            reasons: dict[str, int] = {}
            for t in mine:
                reasons[t.exit_reason] = reasons.get(t.exit_reason, 0) + 1
            out[engine] = {
                "role": "primary" if engine == args.primary else "shadow",
                "trades": len(mine),
                "simulated_rows": sum(t.simulated for t in mine),
                "exit_reasons": reasons,
                "net_pnl": str(sum((t.net_pnl for t in mine), Decimal(0))),
                "buys_placed": len(entries[engine]),
                "buys_also_by_the_other": _matched(entries[engine], entries[other], args.match_s),
                "orders_in_its_account": _orders(accounts[engine]),
            }
        out["identical_trades"] = _same_trades(trades)
        out["divergences"] = _divergences(data / "hybrid_divergences.jsonl")
        return out


def _divergences(log: Path) -> dict[str, Any]:
    """What the HybridValidator reported during the run: per kind, and each line's symbol
    and detail (the JSONL log under the data dir; docs/migration.md reads each kind)."""
    lines = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    kinds: dict[str, int] = {}
    for d in lines:
        kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
    return {"total": len(lines), "by_kind": kinds, "lines": lines}


def _same_trades(trades: list[TradeRecord]) -> dict[str, int]:
    """How many trades the two engines made alike: symbol, exit reason, amounts and prices
    equal (the ledger's exact Decimals), in close order per symbol."""

    def key(t: TradeRecord) -> tuple[object, ...]:
        return (t.symbol, t.exit_reason, t.bought_amount, t.entry_price, t.exit_price, t.net_pnl)

    fsm = sorted((key(t) for t in trades if t.engine == "fsm"), key=str)
    legacy = sorted((key(t) for t in trades if t.engine == "legacy"), key=str)
    same = sum(1 for k in set(fsm) if k in set(legacy))
    return {"fsm": len(fsm), "legacy": len(legacy), "same": same}


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU of the process so far (Linux /proc), its children excluded."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--primary", choices=("fsm", "legacy"), default="fsm")
    parser.add_argument("--match-s", type=float, default=5.0, help="entries this close match")
    return parser.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse_args())), indent=2))
