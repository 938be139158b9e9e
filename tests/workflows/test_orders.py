"""Order handling in the workflow: timeouts, partial fills, the sell ladder, rejections,
force exits and ERROR recovery."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest
from temporalio.client import WorkflowUpdateFailedError

from tests.hang_guard import bounded
from tests.timeskip import skip
from tests.workflows.harness import Bench, TraderHandle, bench, path_of, resumed_state
from trader import contracts as c
from trader.core.params import BuyOrderMode
from trader.core.phases import Phase
from trader.core.state import CoinState
from trader.exchange.paper import PaperFaults


async def _to_position(b: Bench, h: TraderHandle) -> CoinState:
    await b.wait_phase(h, Phase.IDLE)
    b.set_price("BTC/USDT", "97.90")
    return await b.wait_phase(h, Phase.POSITION)


async def test_buy_timeout_with_nothing_filled_returns_to_idle(ts_env, tmp_path):
    async with bench(ts_env.client, tmp_path, faults=PaperFaults(max_fill_ratio=D(0))) as b:
        h = await b.start(buy_order_mode=BuyOrderMode.GTC)
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        s = await b.wait_for(
            h,
            lambda s: (
                s.totals.trades_closed == 0 and len(s.phase_history) >= 5 and s.phase is Phase.IDLE
            ),
            what="back to idle",
            timeout=30,
        )
        assert path_of(s)[:6] == ["warmup", "idle", "entry_eval", "place_buy", "wait_fill", "idle"]
        [order] = b.exchange.all_orders()
        assert order.status.value == "canceled" and order.filled == 0
        assert s.trade.amount == 0 and s.trade.decision_id is None
        slots = await ts_env.client.get_workflow_handle(b.portfolio_id).query(
            "current_slots", result_type=dict
        )
        assert slots == {}  # the slot was given back


async def test_partial_buy_keeps_the_filled_part(ts_env, tmp_path):
    async with bench(ts_env.client, tmp_path, faults=PaperFaults(max_fill_ratio=D("0.5"))) as b:
        h = await b.start()
        s = await _to_position(b, h)
        [buy] = b.exchange.all_orders()
        assert buy.filled < buy.amount and s.trade.amount == buy.filled
        assert s.phase_history[-1].trigger.value == "partial_timeout"


async def test_partial_sells_walk_the_ladder_until_95_percent(ts_env, tmp_path):
    async with bench(ts_env.client, tmp_path) as b:
        h = await b.start()
        s = await _to_position(b, h)
        b.exchange.faults = PaperFaults(max_fill_ratio=D("0.5"))
        b.set_price("BTC/USDT", "101.50")
        s = await b.wait_phase(h, Phase.COOLDOWN, timeout=40)
        sells = [o for o in b.exchange.all_orders() if o.side.value == "sell"]
        assert len(sells) >= 4  # 50 %, 75 %, 87.5 %, 93.75 %, then >= 95 %
        assert len({o.client_order_id for o in sells}) == len(sells)
        prices = [o.price for o in sells if o.price is not None]
        assert prices == sorted(prices, reverse=True)  # each step more aggressive
        [trade] = await b.ledger.trades()
        assert trade.sold_amount >= trade.bought_amount * D("0.95")
        assert trade.sold_amount == sum(o.filled for o in sells)
        history = path_of(s)
        assert history.count("wait_sell_fill") == len(sells)


async def test_force_exit_from_position(ts_env, tmp_path):
    async with bench(ts_env.client, tmp_path) as b:
        h = await b.start()
        await _to_position(b, h)
        await h.signal("force_exit", c.ForceExitRequest(reason="operator"))
        s = await b.wait_phase(h, Phase.COOLDOWN)
        assert "force_exit" in [r.trigger.value for r in s.phase_history]
        [trade] = await b.ledger.trades()
        assert trade.exit_reason == "force_exit"


async def test_force_exit_update_rejected_when_flat(ts_env, tmp_path):
    async with bench(ts_env.client, tmp_path) as b:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await bounded(
                h.execute_update(
                    "request_exit", c.ForceExitRequest(reason="x"), result_type=c.ForceExitResult
                ),
                60,
                "request_exit",
            )
        assert "no position" in str(err.value.cause)
        await h.signal("force_exit", c.ForceExitRequest(reason="idle try"))
        s = await b.wait_for(h, lambda s: "ignored" in s.note, what="ignored note")
        assert s.phase is Phase.IDLE and s.trade.force_exit_reason is None


async def test_force_exit_from_wait_fill_cancels_and_sells_what_filled(ts_env, tmp_path):
    faults = PaperFaults(max_fill_ratio=D("0.5"))
    async with bench(ts_env.client, tmp_path, faults=faults) as b:
        h = await b.start(buy_order_mode=BuyOrderMode.GTC, buy_order_timeout_seconds=60)
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.WAIT_FILL)
        result = await bounded(
            h.execute_update(
                "request_exit", c.ForceExitRequest(reason="abort"), result_type=c.ForceExitResult
            ),
            60,
            "request_exit",
        )
        assert result.accepted
        s = await b.wait_phase(h, Phase.COOLDOWN, timeout=30)
        buy = b.exchange.all_orders()[0]
        assert buy.status.value == "canceled" and buy.filled > 0
        [trade] = await b.ledger.trades()
        assert trade.bought_amount == buy.filled and trade.exit_reason == "force_exit"
        assert path_of(s)[4:6] == ["wait_fill", "place_sell"]


async def test_rejected_buy_goes_idle_without_retry_storm(ts_env, tmp_path):
    faults = PaperFaults(reject_creates_with="InsufficientFunds")
    async with bench(ts_env.client, tmp_path, faults=faults) as b:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        s = await b.wait_for(h, lambda s: "rejected" in s.note, what="rejection")
        assert s.phase in (Phase.IDLE, Phase.ENTRY_EVAL)
        assert b.exchange.all_orders() == []
        history = await h.fetch_history()
        # Only place_order's own: another activity retried on a loaded machine (a warm-up,
        # the slot, the watch) says nothing about a retry storm of the refused order.
        places = {
            e.event_id
            for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")
            and e.activity_task_scheduled_event_attributes.activity_type.name == "place_order"
        }
        place_attempts = [
            e.activity_task_started_event_attributes.attempt
            for e in history.events
            if e.HasField("activity_task_started_event_attributes")
            and e.activity_task_started_event_attributes.scheduled_event_id in places
        ]
        assert len(places) == 1 and place_attempts == [1]


async def test_error_backoff_then_reconciles_back_to_position(fresh_ts_env, tmp_path):
    async with bench(fresh_ts_env.client, tmp_path) as b:
        h = await b.start()
        s = await _to_position(b, h)
        held = s.trade.amount
        b.exchange.faults = PaperFaults(reject_creates_with="InsufficientFunds")
        b.set_price("BTC/USDT", "95.00")  # stop-loss -> sell is refused -> ERROR
        s = await b.wait_phase(h, Phase.ERROR)
        assert "sell failed" in s.note
        b.exchange.faults = None
        await skip(fresh_ts_env, 11)  # the backoff is a workflow timer
        s = await b.wait_for(h, lambda s: s.phase is not Phase.ERROR, what="recovery")
        trig = [r.trigger.value for r in s.phase_history]
        assert "recovered_position" in trig  # the position was not forgotten
        s = await b.wait_phase(h, Phase.COOLDOWN, timeout=30)
        [trade] = await b.ledger.trades()
        assert trade.bought_amount == held and trade.exit_reason == "stop_loss"


async def test_exchange_call_giving_up_mid_phase_goes_to_error_not_a_stuck_task(
    fresh_ts_env, tmp_path
):
    faults = PaperFaults(max_fill_ratio=D(0))
    async with bench(fresh_ts_env.client, tmp_path, faults=faults) as b:
        h = await b.start(buy_order_mode=BuyOrderMode.GTC, buy_order_timeout_seconds=3)
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.WAIT_FILL)
        # The buy rests; polling and cancelling it now fail until retries are exhausted.
        b.exchange.faults = PaperFaults(max_fill_ratio=D(0), fail_lookups=10**6)
        s = await b.wait_phase(h, Phase.ERROR, timeout=30)
        assert "wait_fill failed" in s.note
        b.exchange.faults = PaperFaults(max_fill_ratio=D(0))
        await skip(fresh_ts_env, 11)
        s = await b.wait_for(
            h,
            lambda s: s.phase is Phase.IDLE and s.trade.decision_id is None,
            what="reconciled back to idle",
            timeout=30,
        )
        triggers = [r.trigger.value for r in s.phase_history]
        assert "recovered_buy_open" in triggers  # the open buy was found, then cancelled
        [order] = b.exchange.all_orders()
        assert order.status.value == "canceled" and s.trade.amount == 0


async def test_global_slot_limit_across_workflows(ts_env, tmp_path):
    async with bench(ts_env.client, tmp_path) as b:
        btc = await b.start("BTC/USDT", max_trades=1)
        eth = await b.start("ETH/USDT", max_trades=1)
        await b.wait_phase(btc, Phase.IDLE)
        await b.wait_phase(eth, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(btc, Phase.POSITION)
        b.set_price("ETH/USDT", "1950")
        s = await b.wait_for(
            eth,
            lambda s: any(r.trigger.value == "no_slot" for r in s.phase_history),
            what="no_slot",
        )
        assert "slots in use" in s.note
        assert [o.symbol for o in b.exchange.all_orders()] == ["BTC/USDT"]


async def test_pause_and_resume_entries(ts_env, tmp_path):
    async with bench(ts_env.client, tmp_path) as b:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        await h.signal("pause_entries")
        await b.wait_for(h, lambda s: s.controls.entries_paused, what="paused")
        b.set_price("BTC/USDT", "97.90")
        await asyncio.sleep(1.5)
        assert (await b.state(h)).phase is Phase.IDLE and b.exchange.all_orders() == []
        await h.signal("resume_entries")
        await b.wait_phase(h, Phase.POSITION)


async def test_shutdown_keeps_position_and_resume_continues_it(ts_env, tmp_path):
    async with bench(ts_env.client, tmp_path) as b:
        h = await b.start()
        s = await _to_position(b, h)
        await h.signal("shutdown", c.ShutdownRequest(close_position=False))
        final = await bounded(h.result(), 120, "the stopped trader")
        assert final.phase is Phase.POSITION and final.trade.amount == s.trade.amount
        resumed = await b.start(state=resumed_state(final))
        s2 = await b.wait_phase(resumed, Phase.POSITION)
        assert s2.trade.amount == s.trade.amount and s2.lineage == s.lineage
        await resumed.signal("shutdown", c.ShutdownRequest(close_position=True))
        final2 = await bounded(resumed.result(), 120, "the stopped trader")
        assert final2.phase is Phase.COOLDOWN and final2.totals.trades_closed == 1
        assert len(b.exchange.all_orders()) == 2  # one buy, one sell: nothing doubled


async def test_unknown_symbol_fails_the_workflow_with_a_clear_error(ts_env, tmp_path):
    from temporalio.client import WorkflowFailureError

    async with bench(ts_env.client, tmp_path) as b:
        h = await b.start("NOPE/USDT")  # the starter refuses this; a workflow must too
        with pytest.raises(WorkflowFailureError) as err:
            await bounded(h.result(), 120, "the workflow's end")
        assert "NOPE/USDT" in str(err.value.cause) and b.exchange.all_orders() == []
