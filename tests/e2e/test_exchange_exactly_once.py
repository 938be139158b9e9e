"""Exactly-once orders through the whole real path: workflow -> activity -> ccxt -> HTTP ->
the local Binance server, in separate processes, with the response of an accepted order
lost and the worker SIGKILLed right after the server accepted one."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest

from tests.e2e.helpers import (
    SIM_KEYS,
    binance_config,
    kill,
    query_state,
    run,
    spawn,
    start_sim,
    terminate_queue,
    wait_state,
    wait_until,
    write_config,
)
from tests.event_history import decided_client_ids, started_attempts
from trader import contracts as c
from trader.binance_sim.control import SimControl
from trader.core import ids
from trader.core.phases import Phase
from trader.ledger import read_trades

pytestmark = pytest.mark.e2e

SYMBOL = "SOL/USDT"
CREATE = "POST /api/v3/order"


async def _wait_orders(sim: SimControl, n: int, *, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        orders = await sim.orders()
        if len(orders) >= n:
            return orders
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {n} orders reached the server")


async def test_lost_response_and_sigkill_after_accept_yield_one_order_each(dev_env, tmp_path):
    client = dev_env.client
    sim_proc, url = start_sim(tmp_path, "--static", f"{SYMBOL}=150", "--balance", "USDT=10000")
    queue = f"x1-{uuid.uuid4().hex[:6]}"
    cfg = write_config(
        tmp_path / "cfg.toml",
        address=client.service_client.config.target_host,
        data_dir=tmp_path / "data",
        queue=queue,
        watchlist=(SYMBOL,),
        extra=binance_config(url),
        max_position_hold_minutes='"0"',
        cooldown_minutes='"0.02"',
        stop_loss_pct='"5"',
    )
    wf_id = ids.workflow_id_for("binance", SYMBOL)
    workers = []
    async with SimControl(url) as sim:
        try:
            started = run("starter.py", "--config", str(cfg), "start", "--no-worker", env=SIM_KEYS)
            assert started.returncode == 0, started.stderr
            log = tmp_path / "workers.log"
            workers.append(spawn("worker.py", "--config", str(cfg), log=log, env=SIM_KEYS))
            await wait_state(
                client, wf_id, lambda s: s.phase is Phase.IDLE, timeout=60, what="IDLE"
            )

            # 1. The server accepts the buy and the response is lost (connection dropped).
            await sim.add_fault({"endpoint": CREATE, "kind": "accept_then_drop"})
            await sim.set_price(SYMBOL, "149")  # 0.67 % below the anchor: fires
            state = await wait_state(
                client,
                wf_id,
                lambda s: s.phase is Phase.POSITION,
                timeout=60,
                what="POSITION after the lost response",
            )
            [buy] = await sim.orders()
            assert buy["client_order_id"] == state.trade.order.client_order_id
            assert state.trade.amount == Decimal(buy["filled"]) - Decimal(buy["fee_base"])
            assert ["POST /api/v3/order", "accept_then_drop"] in (await sim.faults())["fired"]

            # 2. The server accepts the sell and holds the response; the worker dies.
            await sim.add_fault({"endpoint": CREATE, "kind": "accept_then_hang", "seconds": 120})
            await sim.set_price(SYMBOL, "151")  # above take profit (0.15 %)
            await _wait_orders(sim, 2, timeout=60)
            kill(workers[0])
            workers.append(spawn("worker.py", "--config", str(cfg), log=log, env=SIM_KEYS))
            ledger = tmp_path / "data" / "ledger.sqlite"
            trades = wait_until(
                lambda: ledger.exists() and read_trades(ledger),
                timeout=120,
                what="the trade to be recorded",
            )
            [trade] = trades
            assert trade.trade_id == state.trade.decision_id

            # 3. A buy the exchange refuses (no funds): back to IDLE once, no retry storm.
            # IDLE with its anchor back (the watch's first checkpoint): a fresh anchor is
            # the watch's first price, so a drop set before the watch saw a price would
            # be the anchor itself, not a drop.
            await wait_state(
                client,
                wf_id,
                lambda s: s.phase is Phase.IDLE and s.entry_watch.anchor > 0,
                timeout=60,
                what="IDLE after cooldown, anchored",
            )
            await sim.set_balances({"USDT": "1"})
            await sim.reset_stats()
            await sim.set_price(SYMBOL, "140")
            refused = await wait_state(
                client,
                wf_id,
                lambda s: "rejected" in s.note and s.phase is Phase.IDLE,
                timeout=60,
                what="the refusal",
            )
            assert "insufficient" in refused.note.lower()
            await asyncio.sleep(3)  # time for a storm to show, if there were one
            assert (await sim.stats()).get(CREATE, 0) == 1

            history = await client.get_workflow_handle(wf_id).fetch_history()
            decided = decided_client_ids(history)
            orders = await sim.orders()
            accepted = [o["client_order_id"] for o in orders]
            # Every decision reached the server exactly once (the refused one was never
            # accepted), and nothing reached it that was not decided.
            assert len(accepted) == len(set(accepted)) == 2
            assert set(accepted) == set(decided[:2])
            assert len(set(decided)) == 3
            sells = [o for o in orders if o["side"] == "sell"]
            assert trade.sold_amount == sum(Decimal(o["filled"]) for o in sells)
            assert trade.bought_amount == Decimal(buy["filled"]) - Decimal(buy["fee_base"])
            attempts = started_attempts(history, c.PLACE_ORDER)
            assert attempts[0] >= 2  # the buy's retry found the accepted order by its id
            assert attempts[1] >= 2  # so did the sell's, on the replacement worker
            final = await query_state(client, wf_id)
            assert final is not None
            assert all(r.dst is not Phase.ERROR for r in final.phase_history)
            print(
                f"\nexactly-once: decisions={len(set(decided))} accepted orders="
                f"{len(accepted)} (refused by the exchange: 1)"
            )
        finally:
            for w in workers:
                kill(w)
            kill(sim_proc)
            await terminate_queue(client, queue)
