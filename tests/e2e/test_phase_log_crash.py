"""The phase log loses no line on a crash: workers SIGKILLed five times while three symbols
trade, the first one with a log that swallows every line (the scenario:
tests/e2e/phase_log_chaos.py; a longer campaign: ``python -m bench.phase_log_chaos``).
Afterwards the directory's files hold each transition of the final histories exactly once.
"""

from __future__ import annotations

import pytest

from tests.e2e.phase_log_chaos import assert_complete, chaos

pytestmark = pytest.mark.e2e

SYMBOLS = ("ADA/USDT", "DOGE/USDT", "LTC/USDT")  # no other e2e test uses them


async def test_sigkilled_workers_lose_no_phase_log_line(dev_env, tmp_path):
    counts = await chaos(dev_env.client, tmp_path, symbols=SYMBOLS, kills=4)
    print("phase log after the SIGKILLs:", counts)
    assert counts["transitions"] >= 30, counts  # the symbols really traded meanwhile
    assert counts["lost_with_first_worker"] >= len(SYMBOLS) * 3, counts  # only replays
    assert_complete(counts)
