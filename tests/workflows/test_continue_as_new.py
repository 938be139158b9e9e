"""Continue-as-new happens only in a quiet phase and carries CoinState exactly."""

from __future__ import annotations

from tests.workflows.harness import bench
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
        s = await b.wait_for(latest, lambda s: s.phase is Phase.COOLDOWN and s.transitions == 0,
                             what="new run in cooldown")
        desc = await latest.describe()
        assert desc.run_id != first_run
        assert s.trades_closed == 1 and s.lineage == lineage
        [trade] = b.ledger.trades()
        assert s.realized_pnl_total == trade.net_pnl
        assert s.phase_history[-1].dst is Phase.COOLDOWN  # bounded history carried over
        await fresh_ts_env.sleep(15 * 60 + 1)
        await b.wait_phase(latest, Phase.IDLE)
        # The next decision continues the sequence: ids never repeat across runs.
        b.set_price("BTC/USDT", "97.00")  # 4.4 % below the fresh anchor (101.50)
        s = await b.wait_phase(latest, Phase.POSITION)
        assert s.decision_seq == 2
        coids = [o.client_order_id for o in b.exchange.all_orders()]
        assert len(coids) == len(set(coids)) == 3
