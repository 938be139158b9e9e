"""Stuck-symbol alerts from the bot process, through the real python-telegram-bot and the
local fake Bot API: one message per stuck episode (not again after a restart of the bot),
none for a symbol that is not stuck, and "no longer stuck" when it moves on. On a real
dev server (visibility) with a Portfolio that never answers, and on the legacy engine's
state file."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from activities.notify import build_notifier, close_notifier
from tests.hang_guard import bounded
from tests.telegram.conftest import CHAT, TOKEN
from tests.telegram.test_commands import _wait
from tests.workflows.harness import HangingAcquire, bench
from trader.config import Settings, load_settings
from trader.core.messages import format_stuck_alert, format_unstuck
from trader.core.phases import Phase
from trader.core.state import CoinState
from trader.legacy.store import StateStore, state_path
from trader.runtime import telegram_bot
from trader.runtime.stuck import StuckSymbol
from trader.runtime.stuck_alerts import StuckAlerts, check_interval, episode_key
from trader.telegram_sim import FakeBotApi

TIMEOUT_S = 2.0  # checks every second


def _settings(tmp_path: Path, sim: FakeBotApi, **more: Any) -> Settings:
    return load_settings(
        data_dir=tmp_path,
        telegram_token=TOKEN,
        telegram_chat_ids=CHAT,
        telegram_api_url=sim.url,
        stuck_timeout_seconds=TIMEOUT_S,
        **more,
    )


async def test_a_stuck_symbol_is_alerted_once_per_episode_across_a_bot_restart(
    dev_env, tmp_path, sim, caplog
):
    caplog.set_level(logging.INFO, logger="durable_trader.telegram")
    client = dev_env.client
    hang = HangingAcquire(client)
    async with bench(client, tmp_path, stand_ins=hang.stand_in) as b, hang:
        settings = _settings(tmp_path, sim, task_queue=b.task_queue, watchlist=["BTC/USDT"])
        eth = await b.start("ETH/USDT")  # IDLE: quiet, never stuck
        btc = await b.start("BTC/USDT")
        await b.wait_phase(eth, Phase.IDLE)
        await b.wait_phase(btc, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")  # a drop: ENTRY_EVAL, waiting for a slot for good
        await b.wait_phase(btc, Phase.ENTRY_EVAL)
        await bounded(hang.started.wait(), 60, "acquire_slot started")

        notifier = build_notifier(settings)
        alerts = StuckAlerts(settings, client, notifier)
        stop = asyncio.Event()
        task = asyncio.create_task(alerts.run(stop))
        try:
            await _wait(lambda: sim.texts(CHAT), "the stuck alert", timeout=60)
            checks = alerts.checks
            await _wait(lambda: alerts.checks >= checks + 3, "three more checks")
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await close_notifier(notifier)
        [alert] = sim.texts(CHAT)
        assert alert.startswith("⚠ BTC/USDT stuck in entry_eval for over 2 s (since 20"), alert
        assert alert.endswith(" UTC)")

        # The bot restarted, as the process runs it: the episode is not sent again (the
        # sent-log), and its end still is, once the symbol moves on.
        stop = asyncio.Event()
        bot = asyncio.create_task(telegram_bot.serve_commands(settings, client, stop))
        try:
            await _wait(lambda: "already sent to a chat" in caplog.text, "the restarted check")
            await btc.signal("pause_entries")  # ends the wait: back to IDLE
            await b.wait_phase(btc, Phase.IDLE)
            await _wait(lambda: len(sim.texts(CHAT)) == 2, "the end of the episode", timeout=60)
        finally:
            stop.set()
            await asyncio.wait_for(bot, 30)
    since = alert.split("(since ")[1].removesuffix(")")
    assert sim.texts(CHAT) == [alert, f"BTC/USDT no longer stuck (was in entry_eval since {since})"]


@pytest.fixture
def store(tmp_path: Path):  # noqa: ANN201
    s = StateStore(state_path(tmp_path))
    yield s
    s.close()


async def test_legacy_mode_reads_the_engine_state(tmp_path, sim, store):
    settings = _settings(tmp_path, sim, fsm_mode="legacy", watchlist=["SOL/USDT"])
    now = time.time()
    store.save(CoinState(symbol="SOL/USDT", phase=Phase.PLACE_BUY, phase_since=now - 600))
    store.save(CoinState(symbol="BTC/USDT", phase=Phase.IDLE, phase_since=now - 600))
    store.save(CoinState(symbol="XRP/USDT", phase=Phase.WAIT_FILL, phase_since=now + 600))
    notifier = build_notifier(settings)
    try:
        alerts = StuckAlerts(settings, None, notifier)
        await alerts.check()
        await alerts.check()
        first = _alert("SOL/USDT", "place_buy", now - 600)
        assert sim.texts(CHAT) == [first]
        # Another phase is another episode: sent; the first one's end is too.
        store.save(CoinState(symbol="SOL/USDT", phase=Phase.WAIT_FILL, phase_since=now - 300))
        await alerts.check()
        await alerts.check()
        assert sim.texts(CHAT) == [
            first,
            _alert("SOL/USDT", "wait_fill", now - 300),
            format_unstuck(symbol="SOL/USDT", phase="place_buy", since=_at(now - 600)),
        ]
    finally:
        await close_notifier(notifier)


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _alert(symbol: str, phase: str, since: float) -> str:
    return format_stuck_alert(symbol=symbol, phase=phase, timeout_s=TIMEOUT_S, since=_at(since))


SINCE = datetime(2025, 3, 1, 12, 0, 5, 250000, tzinfo=UTC)


def test_an_episode_is_workflow_phase_and_phase_since():
    row = StuckSymbol("BTC/USDT", "place_buy", SINCE, "trader:paper:BTC-USDT")
    same = StuckSymbol("BTC/USDT", "place_buy", SINCE, "trader:paper:BTC-USDT")
    later = StuckSymbol("BTC/USDT", "place_buy", SINCE + timedelta(seconds=1), row.workflow_id)
    other_phase = StuckSymbol("BTC/USDT", "wait_fill", SINCE, row.workflow_id)
    other_run = StuckSymbol("BTC/USDT", "place_buy", SINCE, "trader:binance:BTC-USDT")
    keys = {episode_key(r) for r in (row, later, other_phase, other_run)}
    assert episode_key(row) == episode_key(same) and len(keys) == 4


def test_the_check_runs_every_half_timeout_within_bounds():
    assert [check_interval(t) for t in (0.5, 2, 60, 600)] == [1, 1, 30, 60]
