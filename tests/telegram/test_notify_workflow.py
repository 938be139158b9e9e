"""Notifications of a SymbolTrader sent through the real python-telegram-bot to the local
fake Bot API: a full trade's messages exactly once, 429s honoured, failures retried, and a
message that can never be delivered does not stop the trade."""

from __future__ import annotations

from datetime import timedelta

from tests.hang_guard import bounded
from tests.telegram.conftest import CHAT
from tests.timeskip import skip
from tests.workflows.harness import Bench, TraderHandle, bench
from trader import contracts as c
from trader.core.phases import Phase
from trader.telegram.notifier import TelegramNotifier
from trader.telegram_sim import FakeBotApi, Fault
from workflows.base import NOTIFY_DRAIN


async def _trade(b: Bench) -> TraderHandle:
    h = await b.start()
    await b.wait_phase(h, Phase.IDLE)
    b.set_price("BTC/USDT", "97.90")  # 2.1 % below the anchor: buy
    await b.wait_phase(h, Phase.POSITION)
    b.set_price("BTC/USDT", "101.50")  # above take-profit: sell
    await b.wait_phase(h, Phase.COOLDOWN)
    return h


def _kinds(texts: list[str]) -> list[str]:
    return [t.removeprefix("[SIMULATED] ").split(" ", 1)[0] for t in texts]


async def _wait_texts(sim: FakeBotApi, n: int, b: Bench, h: TraderHandle) -> list[str]:
    # The exit message is a background activity: done at the latest when the run drains
    # its background work (the bench's shutdown), so wait through the handle.
    await b.wait_for(h, lambda s: len(sim.texts()) >= n, what=f"{n} messages")
    return sim.texts()


async def test_a_full_trade_sends_entry_and_exit_once(fresh_ts_env, tmp_path, sim, telegram):
    async with bench(fresh_ts_env.client, tmp_path, notify_with=telegram) as b:
        h = await _trade(b)
        texts = await _wait_texts(sim, 2, b, h)
        [trade] = await b.ledger.trades()
    assert _kinds(texts) == ["BUY", "SELL"]
    assert "take_profit" in texts[1] and "net PnL" in texts[1]
    assert {m.chat_id for m in sim.messages} == {CHAT}
    assert trade.exit_reason == "take_profit"
    assert len(sim.texts()) == 2  # nothing more after the run ended


async def test_a_429_is_waited_out_within_the_attempt(fresh_ts_env, tmp_path, sim, telegram):
    sim.add_fault(Fault("rate_limit", retry_after=1, match="BUY"))
    async with bench(fresh_ts_env.client, tmp_path, notify_with=telegram) as b:
        h = await _trade(b)
        texts = await _wait_texts(sim, 2, b, h)
    assert _kinds(sim.refused) == ["BUY"]  # answered 429 once...
    assert sorted(_kinds(texts)) == ["BUY", "SELL"]  # ...then delivered, once (the SELL
    # may overtake the waiting BUY)


async def test_a_long_429_becomes_the_next_retry_delay(fresh_ts_env, tmp_path, sim, telegram):
    # retry_after beyond the 10 s attempt: the attempt fails with next_retry_delay, the
    # retry (after it, on the server's clock) delivers it.
    sim.add_fault(Fault("rate_limit", retry_after=60, match="BUY"))
    async with bench(fresh_ts_env.client, tmp_path, notify_with=telegram) as b:
        h = await _trade(b)
        await skip(fresh_ts_env, 61)  # the retry delay, skipped (cooldown is 15 min)
        texts = await _wait_texts(sim, 2, b, h)
        history = await h.fetch_history()
    assert _kinds(sim.refused) == ["BUY"]
    assert sorted(_kinds(texts)) == ["BUY", "SELL"]
    failed = [
        e.activity_task_failed_event_attributes.failure
        for e in history.events
        if e.HasField("activity_task_failed_event_attributes")
    ]
    assert not failed  # the failed attempt was retried, the activity completed
    started = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert 2 in started  # one activity ran a second attempt: the rate-limited one


async def test_a_failed_send_is_retried_and_sent_once(fresh_ts_env, tmp_path, sim, telegram):
    sim.add_fault(Fault("fail", status=502, match="SELL"))
    async with bench(fresh_ts_env.client, tmp_path, notify_with=telegram) as b:
        h = await _trade(b)
        texts = await _wait_texts(sim, 2, b, h)
    assert _kinds(sim.refused) == ["SELL"]
    assert _kinds(texts) == ["BUY", "SELL"]


async def test_an_undeliverable_message_never_stops_the_trade(
    fresh_ts_env, tmp_path, sim, telegram
):
    sim.add_fault(Fault("fail", status=502, count=100, match="BUY"))  # every attempt fails
    async with bench(fresh_ts_env.client, tmp_path, notify_with=telegram) as b:
        h = await _trade(b)
        await _wait_texts(sim, 1, b, h)
        s = await b.state(h)
        [trade] = await b.ledger.trades()
    assert s.totals.trades_closed == 1 and trade.exit_reason == "take_profit"
    assert _kinds(sim.texts()) == ["SELL"]
    assert set(_kinds(sim.refused)) == {"BUY"}  # retried (until the hour is up), never sent


async def test_a_burst_of_long_429s_outlasts_three_attempts(fresh_ts_env, tmp_path, sim, telegram):
    # Many symbols entering ERROR at once: Telegram answers 429 with retry_after of tens of
    # seconds, again and again. The message is retried past any count of attempts.
    sim.add_fault(Fault("rate_limit", retry_after=40, count=5, match="BUY"))
    async with bench(fresh_ts_env.client, tmp_path, notify_with=telegram) as b:
        h = await _trade(b)
        for _ in range(5):
            await skip(fresh_ts_env, 41)  # each retry delay, skipped (cooldown is 15 min)
        texts = await _wait_texts(sim, 2, b, h)
    assert _kinds(sim.refused) == ["BUY"] * 5
    assert sorted(_kinds(texts)) == ["BUY", "SELL"]


async def test_a_rerun_with_the_same_key_sends_nothing(sim, telegram: TelegramNotifier):
    # A retried activity after its send went through (the result lost, a worker died
    # after the request) carries the same key: the sent-log stops a second message.
    await telegram.send("BUY BTC/USDT", key="trader:paper:BTC-USDT:1a:n1")
    await telegram.send("BUY BTC/USDT", key="trader:paper:BTC-USDT:1a:n1")
    await telegram.send("BUY BTC/USDT", key="trader:paper:BTC-USDT:1a:n2")
    assert sim.texts() == ["BUY BTC/USDT", "BUY BTC/USDT"]


async def test_a_stop_waits_for_an_undeliverable_message_only_so_long(
    fresh_ts_env, tmp_path, sim, telegram
):
    # Telegram down for good: the entry message is retried for up to an hour, but a stop
    # (or a continue-as-new) waits for it only NOTIFY_DRAIN, then gives it up (logged).
    sim.add_fault(Fault("fail", status=502, count=10_000, match="BUY"))
    async with bench(fresh_ts_env.client, tmp_path, notify_with=telegram) as b:
        h = await _trade(b)
        await _wait_texts(sim, 1, b, h)  # the exit message went through
        await h.signal("shutdown", c.ShutdownRequest(close_position=False))
        state = await bounded(h.result(), 120, "the stopped trader")
        events = (await h.fetch_history()).events
    signalled = next(
        e for e in events if e.HasField("workflow_execution_signaled_event_attributes")
    )
    assert events[-1].HasField("workflow_execution_completed_event_attributes")
    waited = events[-1].event_time.ToDatetime() - signalled.event_time.ToDatetime()
    assert waited <= NOTIFY_DRAIN + timedelta(seconds=30), waited  # not the notify's hour
    assert any(e.HasField("activity_task_cancel_requested_event_attributes") for e in events)
    assert state.totals.trades_closed == 1 and _kinds(sim.texts()) == ["SELL"]
