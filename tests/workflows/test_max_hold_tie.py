"""Max hold and the exit watch, at the same instant, on the Java time-skipping server.

Max hold is one rule with one clock: the workflow's timer. The watch used to judge the same
deadline on every ticker, so the two could complete together: the workflow task that handles
the timer cancels a watch that completed while the task ran, and the test server refuses
that completion (``ACTIVITY_UNKNOWN``, sdk-java#2391), leaving the symbol in PLACE_SELL with
nothing pending (docs/migration.md, "Found"). Here the workflow worker's reply to the timer's
task is held in a TCP gate (a slow worker) across the instant the watch's own check would be
due, which makes the tie certain instead of a matter of milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal as D

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.workflows.harness import MARKETS, bench
from tests.workflows.tcp_gate import tcp_gate
from trader import contracts as c
from trader.core.phases import Phase
from trader.exchange.feed import StaticFeed
from trader.exchange.paper import PaperExchange
from trader.runtime.converter import DATA_CONVERTER

HOLD_S = 12.0  # max hold: long enough to close the gate before the timer fires
LAG_MS = 1000
"""The watch's tickers are stamped this far behind the server's clock: its own max-hold
check, had it one, is due this long after the timer, while the timer's task is held."""
HOLD_AFTER_S = 3.0
"""How long past that check the worker's reply is held if the watch never completes."""


async def _server_offset_ms(env: WorkflowEnvironment) -> int:
    before = time.time()
    server = (await env.get_current_time()).timestamp()
    return int((server - (before + time.time()) / 2) * 1000)


async def _watch_done(env: WorkflowEnvironment, workflow_id: str, *, until: float) -> bool:
    """True once the workflow has no exit watch pending on the server (it completed);
    False if it is still pending at ``until`` (wall clock)."""
    handle = env.client.get_workflow_handle(workflow_id)
    while time.time() < until:
        desc = await handle.describe()
        pending = [a.activity_type.name for a in desc.raw_description.pending_activities]
        if str(c.WATCH_EXIT) not in pending:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_sell_at_max_hold_is_not_stalled_by_the_watch_completing_meanwhile(
    fresh_ts_env: WorkflowEnvironment, tmp_path
):
    env = fresh_ts_env
    offset_ms = await _server_offset_ms(env)
    feed = StaticFeed(dict(MARKETS))
    exchange = PaperExchange(
        feed,
        db_path=tmp_path / "paper.sqlite",
        quote_balances={"USDT": D("10000")},
        clock=lambda: int(time.time() * 1000) + offset_ms - LAG_MS,
    )
    target = env.client.service_client.config.target_host
    async with tcp_gate(target) as gate:
        slow = await Client.connect(gate.target, data_converter=DATA_CONVERTER)
        async with bench(
            env.client, tmp_path, exchange=exchange, feed=feed, worker_client=slow
        ) as b:
            # No checkpoint during the test: only max hold could end the watch.
            h = await b.start(max_hold_minutes=D(HOLD_S) / 60, watch_checkpoint_seconds=600)
            await b.wait_phase(h, Phase.IDLE)
            b.set_price("BTC/USDT", "97.90")
            s = await b.wait_phase(h, Phase.POSITION)
            due = s.trade.entry_ts + HOLD_S - offset_ms / 1000  # the timer, on the wall clock
            assert due - time.time() > 2, "reached POSITION too late to close the gate in time"
            await asyncio.sleep(due - 1 - time.time())
            gate.open.clear()  # the worker is handed the timer's task; its reply waits here
            # The watch never judges max hold: still pending past its own check's due time.
            assert not await _watch_done(env, h.id, until=due + LAG_MS / 1000 + HOLD_AFTER_S)
            gate.open.set()
            await b.wait_phase(h, Phase.COOLDOWN, timeout=40)
            [trade] = await b.ledger.trades()
            assert trade.exit_reason == "max_hold"
