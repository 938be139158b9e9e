"""Kill the worker with SIGKILL at the worst moments; a new worker carries on with exactly
one order per decision at the (SQLite-persisted) paper exchange."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.helpers import (
    kill,
    run,
    spawn,
    terminate_queue,
    wait_state,
    wait_until,
    write_config,
)
from tests.event_history import decided_client_ids, started_attempts
from trader import contracts as c
from trader.config import load_settings
from trader.core import ids
from trader.core.market import Order
from trader.core.phases import Phase
from trader.exchange.paper import PaperExchange
from trader.ledger import read_trades
from trader.runtime.exchange import build_exchange

pytestmark = pytest.mark.e2e

SYMBOL = "SOL/USDT"


async def _orders(cfg: Path) -> list[Order]:
    exchange = build_exchange(load_settings(cfg))
    try:
        assert isinstance(exchange, PaperExchange)  # the config's exchange is paper
        return exchange.all_orders()
    finally:
        await exchange.close()


async def test_sigkill_during_buy_and_during_position(dev_env, tmp_path):
    client = dev_env.client
    address = client.service_client.config.target_host
    queue = f"crash-{uuid.uuid4().hex[:6]}"
    cfg = write_config(
        tmp_path / "cfg.toml",
        address=address,
        data_dir=tmp_path / "data",
        queue=queue,
        watchlist=(SYMBOL,),
    )
    wf_id = ids.workflow_id_for("paper", SYMBOL)
    started = run("starter.py", "--config", str(cfg), "start", "--no-worker")
    assert started.returncode == 0, started.stderr
    log = tmp_path / "workers.log"
    # Worker 1: the paper exchange accepts the buy, then "loses the response" for 60 s.
    w1 = spawn("worker.py", "--config", str(cfg), log=log, env={"PAPER__ACCEPT_THEN_HANG_S": "60"})
    workers = [w1]
    try:
        buys = []
        for _ in range(240):
            buys = [o for o in await _orders(cfg) if o.side.value == "buy"]
            if buys:
                break
            await asyncio.sleep(0.5)
        assert buys, "no buy reached the exchange"
        kill(w1)  # the order is accepted, the activity never returned
        w2 = spawn("worker.py", "--config", str(cfg), log=log)
        workers.append(w2)
        state = await wait_state(
            client,
            wf_id,
            lambda s: s.phase is Phase.POSITION,
            timeout=90,
            what="POSITION after the crash",
        )
        orders = await _orders(cfg)
        # The order the killed worker placed exists once: the retry found it by its id.
        # (On the fast config the symbol may have traded again by the time the query
        # answers, so the checks are per decision, not "one buy in all".)
        crashed = buys[0].client_order_id
        assert [o.client_order_id for o in orders].count(crashed) == 1
        assert len({o.client_order_id for o in orders}) == len(orders)
        [held_buy] = [o for o in orders if o.client_order_id == state.trade.order.client_order_id]
        assert state.trade.amount == held_buy.filled
        history = await client.get_workflow_handle(wf_id).fetch_history()
        assert started_attempts(history, c.PLACE_ORDER)[0] >= 2

        # Second crash: while holding the position.
        kill(w2)
        w3 = spawn("worker.py", "--config", str(cfg), log=log)
        workers.append(w3)
        ledger_path = tmp_path / "data" / "ledger.sqlite"
        trades = wait_until(
            lambda: ledger_path.exists() and read_trades(ledger_path),
            timeout=120,
            what="the trade to complete after the second crash",
        )
        [trade] = [t for t in trades if t.trade_id == state.trade.decision_id]
        orders = await _orders(cfg)
        decision_orders = [
            o
            for o in orders
            if o.client_order_id
            in decided_client_ids(await client.get_workflow_handle(wf_id).fetch_history())
        ]
        # Every order at the exchange was decided in the history, and each only once.
        assert len(decision_orders) == len(orders)
        assert len({o.client_order_id for o in orders}) == len(orders)
        sells = [o for o in orders if o.side.value == "sell"]
        assert trade.sold_amount == sum((o.filled for o in sells), Decimal(0))
        assert trade.bought_amount == held_buy.filled
    finally:
        for w in workers:
            kill(w)
        await terminate_queue(client, queue)
