"""The command bot through the real python-telegram-bot polling the local fake Bot API, on
real workflows: commands from the allowed chat act and are answered; others do nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.telegram.conftest import CHAT, OTHER_CHAT, TOKEN
from tests.workflows.harness import Bench, TraderHandle, bench
from trader.config import load_settings
from trader.core import ids
from trader.core.phases import Phase
from trader.runtime.telegram_bot import CommandBot
from trader.telegram_sim import FakeBotApi


async def _wait(predicate, what: str, timeout: float = 20) -> None:
    for _ in range(int(timeout * 20)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.asynccontextmanager
async def _rig(
    client: Client, tmp_path: Path, sim: FakeBotApi
) -> AsyncIterator[tuple[Bench, CommandBot]]:
    async with bench(client, tmp_path) as b:
        settings = load_settings(
            task_queue=b.task_queue,
            watchlist=["BTC/USDT"],
            data_dir=tmp_path,
            telegram_token=TOKEN,
            telegram_chat_ids=f"{CHAT}, 123",
            telegram_api_url=sim.url,
        )
        bot = CommandBot(settings, client)
        stop = asyncio.Event()
        task = asyncio.create_task(bot.run(stop))
        try:
            yield b, bot
        finally:
            stop.set()
            await task


@pytest.fixture
async def rig(fresh_ts_env, tmp_path, sim) -> AsyncIterator[tuple[Bench, CommandBot]]:
    async with _rig(fresh_ts_env.client, tmp_path, sim) as pair:
        yield pair


async def _ask(sim: FakeBotApi, bot: CommandBot, chat: str, text: str) -> list[str]:
    """Send ``text`` from ``chat``; the bot's answers to that chat once it handled it."""
    before, handled = len(sim.texts(chat)), bot.handled
    sim.inject(chat, text)
    await _wait(lambda: bot.handled > handled, f"the bot to handle {text!r}")
    return sim.texts(chat)[before:]


async def _holding(b: Bench) -> TraderHandle:
    h = await b.start(workflow_id=ids.workflow_id_for("paper", "BTC/USDT"))
    await b.wait_phase(h, Phase.IDLE)
    b.set_price("BTC/USDT", "97.90")  # a 2.1 % drop: buy; the price then stays put
    await b.wait_phase(h, Phase.POSITION)
    return h


async def test_forceexit_from_the_allowed_chat_sells_and_others_do_nothing(rig, sim):
    b, bot = rig
    h = await _holding(b)
    assert await _ask(sim, bot, OTHER_CHAT, "/forceexit BTC/USDT") == []  # ignored, no answer
    assert await _ask(sim, bot, OTHER_CHAT, "/stop close") == []
    s = await b.state(h)
    assert s.phase is Phase.POSITION and not s.controls.shutdown_requested
    assert not s.trade.exit_reason

    [answer] = await _ask(sim, bot, CHAT, "/forceexit BTC/USDT")
    assert answer.startswith("BTC/USDT: accepted in position"), answer
    await b.wait_phase(h, Phase.COOLDOWN)
    [trade] = await b.ledger.trades()
    assert trade.exit_reason == "force_exit"

    [refused] = await _ask(sim, bot, CHAT, "/forceexit all")
    assert refused.startswith("BTC/USDT: rejected:") and "position" in refused, refused


async def test_pause_resume_profit_help(rig, sim):
    b, bot = rig
    h = await _holding(b)
    [paused] = await _ask(sim, bot, CHAT, "/pause btc/usdt")
    assert paused == "paused: BTC/USDT"
    await b.wait_for(h, lambda s: s.controls.entries_paused, what="entries paused")
    [resumed] = await _ask(sim, bot, CHAT, "/resume")
    assert resumed == "resumed: BTC/USDT"
    await b.wait_for(h, lambda s: not s.controls.entries_paused, what="entries resumed")
    [profit] = await _ask(sim, bot, CHAT, "/profit 7")
    assert profit == "no closed trades in that period"
    [helped] = await _ask(sim, bot, CHAT, "/help")
    assert "/forceexit SYMBOL|all" in helped
    [unknown] = await _ask(sim, bot, CHAT, "/sell everything")
    assert unknown.startswith("not understood: /sell everything")


async def test_status_answers_from_visibility(dev_env, tmp_path, sim):
    # The dev server: the time-skipping one has no visibility (list) API.
    async with _rig(dev_env.client, tmp_path, sim) as (b, bot):
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.POSITION)
        status = ""
        for _ in range(50):  # visibility follows the upserts within moments
            [status] = await _ask(sim, bot, CHAT, "/status")
            if status.startswith("BTC/USDT: position @ "):
                break
            await asyncio.sleep(0.2)
        assert status.startswith("BTC/USDT: position @ 97.9"), status
        assert "%" in status
