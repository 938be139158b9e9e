"""A longer phase-log chaos campaign than the e2e test (tests/e2e/phase_log_chaos.py):
more symbols, more SIGKILLs, several rounds, each with a fresh local dev server and log
directory. Prints each round's comparison of the final histories with the log and fails
(exit 1) if any round lost or doubled a line.

    python -m bench.phase_log_chaos [--rounds 4] [--kills 12] [--symbols 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from bench.common import dev_server
from tests.e2e.phase_log_chaos import assert_complete, chaos
from trader.config_paper import DEFAULT_START_PRICES

SYMBOLS = tuple(s for s in DEFAULT_START_PRICES if s.endswith("/USDT"))


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--symbols", type=int, default=6, choices=range(1, len(SYMBOLS) + 1))
    args = parser.parse_args()
    failed = 0
    for n in range(args.rounds):
        # A server per round: a symbol stopped while holding resumes its last run's state
        # (phase_history included) on the next start, and that run's log is gone.
        async with dev_server() as env:
            with tempfile.TemporaryDirectory() as d:
                counts = await chaos(
                    env.client, Path(d), symbols=SYMBOLS[: args.symbols], kills=args.kills, seed=n
                )
            try:
                assert_complete(counts)
            except AssertionError:
                failed += 1
            print(json.dumps({"round": n, **counts}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
