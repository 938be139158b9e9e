"""The command bot in legacy mode: the real python-telegram-bot polling the local fake Bot
API, the commands going to a running legacy engine through its request queue (no Temporal),
on the real paper exchange. The engine applies them and the chat gets its answers."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

from tests.legacy.test_books import BooksRig, _holding
from tests.legacy.test_engine_start import SOL
from tests.telegram.conftest import CHAT, OTHER_CHAT, TOKEN
from tests.telegram.test_commands import _ask
from trader.config import load_settings
from trader.core.phases import Phase
from trader.runtime.telegram_bot import CommandBot
from trader.telegram_sim import FakeBotApi


async def _until(predicate, what: str, timeout: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_pause_and_forceexit_reach_the_legacy_engine(tmp_path: Path, sim: FakeBotApi):
    rig = BooksRig(tmp_path)
    s = await _holding(rig, Decimal("1"))
    s.trade.exit_reason = None  # it holds until told otherwise
    rig.store.save(s)
    engine = rig.engine([SOL])
    settings = load_settings(
        None,
        data_dir=tmp_path,
        fsm_mode="legacy",
        watchlist=[SOL],
        telegram_token=TOKEN,
        telegram_chat_ids=CHAT,
        telegram_api_url=sim.url,
    )
    bot = CommandBot(settings, None)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(engine.run(stop)), asyncio.create_task(bot.run(stop))]
    runner = engine.runners[SOL]
    try:
        await _until(lambda: runner.s.phase is Phase.POSITION, "the position resumed")
        # Another chat: ignored, unanswered, nothing reaches the engine.
        assert await _ask(sim, bot, OTHER_CHAT, "/forceexit SOL/USDT") == []
        assert await _ask(sim, bot, OTHER_CHAT, "/pause") == []
        assert runner.s.trade.exit_reason is None and not runner.s.controls.entries_paused

        [paused] = await _ask(sim, bot, CHAT, "/pause sol/usdt")
        assert paused.startswith(f"{SOL}: accepted"), paused
        assert runner.s.controls.entries_paused

        [exiting] = await _ask(sim, bot, CHAT, "/forceexit SOL/USDT")
        assert exiting.startswith(f"{SOL}: accepted in position"), exiting
        await _until(lambda: runner.s.totals.trades_closed == 1, "the forced exit")
        [trade] = await (await rig.books()).trades()
        assert trade.exit_reason == "force_exit" and trade.engine == "legacy"

        [refused] = await _ask(sim, bot, CHAT, "/forceexit all")
        assert refused.startswith(f"{SOL}: refused") and "no position" in refused, refused
        [resumed] = await _ask(sim, bot, CHAT, "/resume")
        assert resumed.startswith(f"{SOL}: accepted") and not runner.s.controls.entries_paused
        assert all(not t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await rig.close()
