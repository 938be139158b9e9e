"""Parity on real data: the legacy engine and the SymbolTrader workflows (on a real
Temporal server), fed the same recorded candles on one clock (trader/runtime/parity.py),
make the same trades: entries, exits, reasons, amounts and prices, point for point."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.conftest import SHARED_DATA
from trader.runtime.parity import parity_params, run_parity, start_env

OHLCV = SHARED_DATA / "ohlcv"


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    # A server of its own: its clock must never skip (nothing here unlocks it).
    env = await start_env()
    yield env
    await env.shutdown()


async def test_both_engines_make_the_same_trades_in_the_crash(
    env: WorkflowEnvironment, tmp_path: Path
):
    # 16 Jan 2018, 00:15-02:45, the crash: 120 points, a second each. TRX takes profit, then
    # trades again and again, each entry after the previous trade's cooldown; ETC stops out
    # and trails; an NXT entry (01:38) is held to its max hold (02:38). bench/parity.py runs
    # all ten pairs and longer.
    result = await run_parity(
        env,
        OHLCV,
        ["ETC/BTC", "NXT/BTC", "TRX/BTC"],
        tmp_path,
        start_ms=_ms("2018-01-16T00:15"),
        end_ms=_ms("2018-01-16T02:45"),
        params=parity_params(),
    )
    reasons = {row.reason for row in result.legacy}
    # The window must exercise the time rules (max hold; cooldowns between TRX's trades).
    assert len(result.legacy) >= 6, result.legacy
    assert {"take_profit", "stop_loss", "trailing_stop", "max_hold"} <= reasons, result.legacy
    assert {row.symbol for row in result.legacy} == {"ETC/BTC", "NXT/BTC", "TRX/BTC"}
    closed = [row for row in result.legacy if row.exit_ms is not None]
    assert all(row.amount > 0 and row.sold == row.amount for row in closed)
    assert result.fsm == result.legacy
