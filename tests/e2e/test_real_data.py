"""End to end on real data: ``starter.py`` (with its worker) trades the ten real 2018
Bittrex pairs, replayed by the local Binance server at 300x through the real ccxt client,
and completes full lifecycles without a single error."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

import pytest

from tests.conftest import SHARED_DATA
from tests.e2e.helpers import (
    SIM_KEYS,
    binance_config,
    kill,
    spawn,
    start_sim,
    terminate_queue,
    write_config,
)
from trader.contracts import TradeRecord
from trader.core import ids
from trader.core.state import CoinState
from trader.ledger import read_trades

pytestmark = pytest.mark.e2e

PAIRS = (
    "ADA/BTC",
    "DASH/BTC",
    "ETC/BTC",
    "ETH/BTC",
    "LTC/BTC",
    "NXT/BTC",
    "TRX/BTC",
    "XLM/BTC",
    "XMR/BTC",
    "ZEC/BTC",
)
WANTED_TRADES = 3


async def test_starter_trades_the_real_2018_pairs_through_ccxt(dev_env, tmp_path):
    ohlcv = SHARED_DATA / "ohlcv"
    assert ohlcv.is_dir(), f"real market data not found at {ohlcv}"
    client = dev_env.client
    # 300x: one real second is one 5-minute candle; start on the 16 Jan 2018 crash.
    sim, url = start_sim(
        tmp_path,
        "--replay",
        str(ohlcv),
        "--speed",
        "300",
        "--start",
        "2018-01-16T00:00",
        "--symbols",
        *PAIRS,
        "--balance",
        "BTC=1",
        "--level-liquidity",
        "2",
    )
    queue = f"real-{uuid.uuid4().hex[:6]}"
    cfg = write_config(
        tmp_path / "cfg.toml",
        address=client.service_client.config.target_host,
        data_dir=tmp_path / "data",
        queue=queue,
        watchlist=PAIRS,
        extra=binance_config(url),
        trade_budget='"0.005"',
        max_trades="5",
        drop_trigger_pct='"2"',
        anchor_mode='"window"',
        drop_lookback_seconds="20",
        backfill_minutes="1",
        take_profit_pct='"1.5"',
        stop_loss_pct='"3"',
        trailing_enabled="true",
        trailing_activation_pct='"1"',
        trailing_distance_pct='"0.5"',
        max_position_hold_minutes='"0.5"',
        cooldown_minutes='"0.1"',
        order_activity_timeout_seconds="15",
    )
    log = tmp_path / "starter.log"
    starter = spawn("starter.py", "--config", str(cfg), log=log, env=SIM_KEYS)
    ledger = tmp_path / "data" / "ledger.sqlite"
    try:
        deadline = time.monotonic() + 240
        trades: list[TradeRecord] = []
        while time.monotonic() < deadline and len(trades) < WANTED_TRADES:
            assert starter.poll() is None, log.read_text()[-3000:]
            await asyncio.sleep(2)
            trades = read_trades(ledger) if ledger.exists() else []
        assert len(trades) >= WANTED_TRADES, f"only {len(trades)} trades in 240 s"
        states = [
            await client.get_workflow_handle(ids.workflow_id_for("binance", p)).query(
                "state", result_type=CoinState
            )
            for p in PAIRS
        ]
        assert {s.symbol for s in states} == set(PAIRS)
        assert [(s.symbol, s.last_error) for s in states if s.error_count or s.last_error] == []
        assert sum(s.totals.trades_closed for s in states) >= WANTED_TRADES
        for t in trades:  # BTC-quoted: amounts like 180 ADA at 5e-05, budget 0.005 BTC
            assert t.entry_cost <= t.bought_amount * t.entry_price * 2
            assert t.sold_amount > 0 and t.exit_reason
    finally:
        if starter.poll() is None:
            starter.send_signal(signal.SIGTERM)
            try:
                starter.wait(timeout=30)
            except Exception:
                kill(starter)
        kill(sim)
        await terminate_queue(client, queue)
    text = log.read_text()
    assert "Traceback" not in text and " ERROR " not in text, text[-3000:]
