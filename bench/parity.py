"""Parity bench: recorded candles through the legacy engine and the SymbolTrader workflows
(a real Temporal test server) on one clock; the per-pair table of docs/migration.md.

    python -m bench.parity                                  # the ten BTC pairs, whole data
    python -m bench.parity --start 2018-01-16T00:00 --end 2018-01-17T00:00
    python -m bench.parity --symbols TRX/BTC --point-ms 500

The data's price points are shown one per ``--point-ms`` of clock (both engines react to
a point within it; see trader/runtime/parity.py), so a run takes points x point-ms: the
whole ten-pair set is 23,040 points (~6.4 h at 1 s; bench/parity_days.py runs it a day
a process, several at once, in ~1 h at 500 ms). Prints one row per pair (trades in
each engine, identical or not) and every differing trade; exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.backtest import SHARED
from trader.runtime.parity import Result, TradeRow, parity_params, run_parity, start_env

PAIRS = ["ADA", "DASH", "ETC", "ETH", "LTC", "NXT", "TRX", "XLM", "XMR", "ZEC"]


def _ms(text: str) -> int:
    when = datetime.fromisoformat(text)
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


def table(result: Result, symbols: list[str]) -> tuple[list[str], bool]:
    lines = ["| pair | legacy trades | FSM trades | identical | reasons |", "|---|---|---|---|---|"]
    same = True
    for s in symbols:
        legacy = [r for r in result.legacy if r.symbol == s]
        fsm = [r for r in result.fsm if r.symbol == s]
        equal = legacy == fsm
        same &= equal
        reasons: dict[str, int] = {}
        for r in legacy:
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
        why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "-"
        lines.append(f"| {s} | {len(legacy)} | {len(fsm)} | {'yes' if equal else 'NO'} | {why} |")
        if not equal:
            lines.extend(_diff(legacy, fsm))
    return lines, same


def _diff(legacy: list[TradeRow], fsm: list[TradeRow]) -> list[str]:
    out = []
    for i in range(max(len(legacy), len(fsm))):
        a = legacy[i] if i < len(legacy) else None
        b = fsm[i] if i < len(fsm) else None
        if a != b:
            out.append(f"|   #{i} legacy: {a} |")
            out.append(f"|   #{i} fsm:    {b} |")
    return out


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", nargs="*", default=[f"{p}/BTC" for p in PAIRS])
    ap.add_argument("--start", help="first candle (ISO, UTC); default: the data's first")
    ap.add_argument("--end", help="end of the window (ISO, UTC); default: the data's end")
    ap.add_argument("--point-ms", type=int, default=1000)
    ap.add_argument("--data", type=Path, default=SHARED)
    args = ap.parse_args(argv)
    env = await start_env()
    try:
        with tempfile.TemporaryDirectory() as work:
            result = await run_parity(
                env,
                args.data,
                sorted(args.symbols),
                Path(work),
                start_ms=_ms(args.start) if args.start else 0,
                end_ms=_ms(args.end) if args.end else 2**62,
                point_ms=args.point_ms,
                params=parity_params(),
            )
    finally:
        await env.shutdown()
    lines, same = table(result, sorted(args.symbols))
    print("\n".join(lines))
    print(f"\n{closing_line(result, args.point_ms)}")
    return 0 if same else 1


def closing_line(result: Result, point_ms: int) -> str:
    """The run's last line (bench/parity_days.py reads it: a run without it did not end)."""
    load = os.getloadavg()
    return (
        f"{result.points} points x {point_ms} ms; wall {result.wall_s:.0f} s; "
        f"trades legacy {len(result.legacy)} / FSM {len(result.fsm)}; "
        f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
