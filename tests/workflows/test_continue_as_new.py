"""Continue-as-new happens only in a quiet phase and carries CoinState exactly."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType

from tests.timeskip import skip
from tests.workflows.harness import bench
from trader import contracts as c
from trader.core.phases import Phase


async def test_continue_as_new_after_a_trade_preserves_state(fresh_ts_env, tmp_path):
    async with bench(fresh_ts_env.client, tmp_path) as b:
        # A full trade is exactly 10 transitions: the run continues-as-new in COOLDOWN.
        h = await b.start(continue_as_new_after_transitions=10)
        first_run = (await h.describe()).run_id
        await b.wait_phase(h, Phase.IDLE)
        lineage = (await b.state(h)).lineage
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.POSITION)
        b.set_price("BTC/USDT", "101.50")
        latest = fresh_ts_env.client.get_workflow_handle(h.id)
        s = await b.wait_for(
            latest,
            lambda s: s.phase is Phase.COOLDOWN and s.transitions == 0,
            what="new run in cooldown",
            timeout=60,  # the new run answers queries late on a loaded machine
        )
        desc = await latest.describe()
        assert desc.run_id != first_run
        # Memo does not survive continue-as-new: the new run upserts it again at its start
        # (behind the status-memo patch), so `starter.py status` keeps its prices.
        history = await latest.fetch_history()
        memo_events = [
            e
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED
        ]
        assert memo_events and memo_events[0].event_id < 10  # in the run's first task
        memo = await desc.memo_value(c.STATUS_MEMO_KEY, type_hint=c.StatusMemo)
        assert memo.note == s.note and memo.price == s.current_price
        assert s.totals.trades_closed == 1 and s.lineage == lineage
        [trade] = await b.ledger.trades()
        assert s.totals.realized_pnl == trade.net_pnl
        assert s.phase_history[-1].dst is Phase.COOLDOWN  # bounded history carried over
        await skip(fresh_ts_env, 15 * 60 + 1)
        await b.wait_phase(latest, Phase.IDLE)
        # The next decision continues the sequence: ids never repeat across runs.
        b.set_price("BTC/USDT", "97.00")  # 4.4 % below the fresh anchor (101.50)
        s = await b.wait_phase(latest, Phase.POSITION)
        assert s.decision_seq == 2
        coids = [o.client_order_id for o in b.exchange.all_orders()]
        assert len(coids) == len(set(coids)) == 3
