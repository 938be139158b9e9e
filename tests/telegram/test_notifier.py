"""The notifier through the real python-telegram-bot and the local fake Bot API, on a real
SQLite sent-log: every chat is tried, a claim still in flight is retried later (never
resent), a cancelled request on the wire is never sent twice, and the sent-log never stalls
the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.telegram.conftest import CHAT, TOKEN
from trader.telegram.notifier import RetryLater, TelegramNotifier, Undeliverable, sent_key
from trader.telegram.sent_log import Claim, SentLog
from trader.telegram_sim import FakeBotApi, Fault

CHAT2 = "4202"


@pytest.fixture
async def two_chats(sim: FakeBotApi, tmp_path: Path) -> AsyncIterator[TelegramNotifier]:
    notifier = TelegramNotifier(
        token=TOKEN, chat_ids=[CHAT, CHAT2], api_url=sim.url, sent_log=tmp_path / "sent.sqlite"
    )
    yield notifier
    await notifier.close()


async def _until(predicate, what: str) -> None:
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_an_undeliverable_chat_does_not_silence_the_next(sim, two_chats):
    sim.add_fault(Fault("fail", status=403, count=10, chat=CHAT))  # the bot was blocked there
    with pytest.raises(Undeliverable):
        await two_chats.send("SELL BTC/USDT", key="k:n1")
    assert sim.texts(CHAT2) == ["SELL BTC/USDT"] and sim.texts(CHAT) == []


async def test_a_retry_resends_only_to_the_chat_that_missed_it(sim, two_chats):
    sim.add_fault(Fault("fail", status=502, chat=CHAT))
    with pytest.raises(RetryLater):
        await two_chats.send("SELL BTC/USDT", key="k:n1")
    await two_chats.send("SELL BTC/USDT", key="k:n1")  # the activity's retry
    assert sim.texts(CHAT) == ["SELL BTC/USDT"]
    assert sim.texts(CHAT2) == ["SELL BTC/USDT"]  # once: it had it from the first attempt


async def test_a_reused_key_with_another_text_is_sent(sim, telegram):
    # After a workflow reset (or a rollback of notify_seq) a key comes back for another
    # message: the text's hash in the sent-log's key tells them apart.
    await telegram.send("BUY BTC/USDT @ 97.9", key="trader:paper:BTC-USDT:1a:n1")
    await telegram.send("SELL BTC/USDT @ 101.5", key="trader:paper:BTC-USDT:1a:n1")
    await telegram.send("SELL BTC/USDT @ 101.5", key="trader:paper:BTC-USDT:1a:n1")
    assert sim.texts() == ["BUY BTC/USDT @ 97.9", "SELL BTC/USDT @ 101.5"]


async def test_a_429_wait_leaves_room_for_the_request(sim, telegram):
    # 2 s of retry_after fit 6 s left, but not with the request's own timeout after it:
    # waiting would let the attempt outlive its timeout, so the retry goes to Temporal.
    sim.add_fault(Fault("rate_limit", retry_after=2))
    with pytest.raises(RetryLater) as err:
        await telegram.send("BUY BTC/USDT", key="k:n1", deadline=time.monotonic() + 6)
    assert err.value.delay == 2
    await telegram.send("BUY BTC/USDT", key="k:n1", deadline=time.monotonic() + 60)
    assert sim.texts() == ["BUY BTC/USDT"]


async def test_a_claim_in_flight_is_busy_and_an_old_one_in_doubt(sim, telegram, tmp_path):
    other = SentLog(tmp_path / "sent.sqlite")  # another worker's attempt, mid-request
    key = sent_key("k:n1", "BUY BTC/USDT")
    assert (await other.claim(key, CHAT, busy_s=10))[0] is Claim.MINE
    with pytest.raises(RetryLater) as err:
        await telegram.send("BUY BTC/USDT", key="k:n1", attempt_s=10)
    assert err.value.delay is not None and 0 < err.value.delay <= 10
    assert sim.texts() == []
    # Older than an attempt can live: its process died mid-request. Never resent.
    with sqlite3.connect(tmp_path / "sent.sqlite") as db:
        db.execute("UPDATE telegram_sent SET ts = ts - 11")
    await telegram.send("BUY BTC/USDT", key="k:n1", attempt_s=10)
    assert sim.texts() == []
    other.close()


async def test_cancelled_on_the_wire_is_not_sent_again(sim, telegram):
    # A worker shutting down cancels the attempt after the request reached Telegram.
    sim.add_fault(Fault("hang", seconds=30))
    task = asyncio.create_task(telegram.send("BUY BTC/USDT", key="k:n1"))
    await _until(lambda: sim.texts() == ["BUY BTC/USDT"], "the request to arrive")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await telegram.send("BUY BTC/USDT", key="k:n1", attempt_s=0)  # the retry
    assert sim.texts() == ["BUY BTC/USDT"]


async def test_cancelled_while_waiting_out_a_429_is_sent_by_the_retry(sim, telegram):
    sim.add_fault(Fault("rate_limit", retry_after=30))
    task = asyncio.create_task(telegram.send("BUY BTC/USDT", key="k:n1"))
    await _until(lambda: sim.refused == ["BUY BTC/USDT"], "the 429")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await telegram.send("BUY BTC/USDT", key="k:n1", attempt_s=0)
    assert sim.texts() == ["BUY BTC/USDT"]  # certainly not delivered before: sent now


async def test_a_locked_sent_log_does_not_block_the_event_loop(sim, telegram, tmp_path):
    # Another process holds the sent-log's write lock (sqlite's busy_timeout is 5 s): the
    # claim waits in a thread, the loop goes on (heartbeats, the hub, order activities).
    holder = sqlite3.connect(tmp_path / "sent.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    task = asyncio.create_task(telegram.send("BUY BTC/USDT", key="k:n1"))
    await asyncio.sleep(0.5)  # a blocked loop would only come back here after 5 s
    assert not task.done() and sim.texts() == []
    holder.execute("COMMIT")
    holder.close()
    await task
    assert sim.texts() == ["BUY BTC/USDT"]
