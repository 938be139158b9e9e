"""SymbolTrader through the real ccxt adapter and the local Binance-compatible server over
HTTP: a full trade with Binance's buy fee withheld in base, a create whose response is lost,
rejections without a retry storm, and dry-run (live prices, no order at the exchange)."""

from __future__ import annotations

import time
from decimal import Decimal as D

from temporalio.api.sdk.v1 import WorkflowMetadata

from tests.exchange.sim_fixtures import settable_feed, sim_and_adapter
from tests.workflows.harness import Bench, TraderHandle, bench, path_of, placed_client_ids
from trader.binance_sim import SimServer
from trader.binance_sim.faults import FaultRule
from trader.core.market import OrderSide
from trader.core.phases import Phase
from trader.core.pnl import realized_pnl
from trader.exchange.dry_run import DryRunExchange, LiveTickerFeed
from trader.exchange.paper import PaperExchange

ORDER = "POST /api/v3/order"
USDT_ONLY = {"USDT": D("10000")}


async def _buy_then_sell(b: Bench, h: TraderHandle) -> None:
    await b.wait_phase(h, Phase.IDLE)
    b.set_price("BTC/USDT", "97.90")  # 2.1 % below the anchor: buy
    await b.wait_phase(h, Phase.POSITION)
    b.set_price("BTC/USDT", "101.50")  # above take-profit: sell


async def test_trade_through_ccxt_matches_the_exchange_fills(ts_env, tmp_path):
    async with (
        sim_and_adapter(tmp_path, balances=USDT_ONLY) as (srv, ex),
        bench(ts_env.client, tmp_path, exchange=ex, feed=settable_feed(srv)) as b,
    ):
        h = await b.start()
        await _buy_then_sell(b, h)
        s = await b.wait_phase(h, Phase.COOLDOWN, timeout=40)
        assert path_of(s)[:11] == [
            "warmup",
            "idle",
            "entry_eval",
            "place_buy",
            "wait_fill",
            "position",
            "exit_eval",
            "place_sell",
            "wait_sell_fill",
            "post_trade",
            "cooldown",
        ]
        [trade] = await b.ledger.trades()
        fills = srv.exchange.fills("BTC/USDT")
        buys = [f for f in fills if f.side is OrderSide.BUY]
        sells = [f for f in fills if f.side is OrderSide.SELL]
        assert buys and sells and all(f.fee_currency == "BTC" for f in buys)
        filled, withheld = sum((f.amount for f in buys), D(0)), sum((f.fee for f in buys), D(0))
        paid = sum((f.price * f.amount for f in buys), D(0))
        withheld_value = withheld * paid / filled  # valued at the average fill price
        assert trade.bought_amount == filled - withheld
        assert abs(trade.entry_cost - (paid - withheld_value)) < D("1e-18")
        assert abs(trade.entry_fee - withheld_value) < D("1e-18")
        assert trade.sold_amount == sum(f.amount for f in sells)
        assert trade.exit_proceeds == sum(f.price * f.amount for f in sells)
        assert trade.exit_fee == sum(f.fee for f in sells)
        expected = realized_pnl(
            bought_amount=filled - withheld,
            entry_cost=paid - withheld_value,
            entry_fee=withheld_value,
            sold_amount=trade.sold_amount,
            exit_proceeds=trade.exit_proceeds,
            exit_fee=trade.exit_fee,
        )
        assert abs(trade.net_pnl - expected.net) < D("1e-18")
        # What the account holds is what the ledger says is left (dust below one step).
        balances = await srv_balances(srv)
        assert balances.get("BTC", D(0)) == trade.bought_amount - trade.sold_amount
        assert not trade.simulated and s.simulated is False


async def test_lost_create_response_places_exactly_one_order(ts_env, tmp_path):
    async with (
        sim_and_adapter(tmp_path, balances=USDT_ONLY) as (srv, ex),
        bench(ts_env.client, tmp_path, exchange=ex, feed=settable_feed(srv)) as b,
    ):
        srv.faults.add(FaultRule(endpoint=ORDER, kind="accept_then_drop"))
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        s = await b.wait_phase(h, Phase.POSITION, timeout=30)
        [order] = srv.exchange.all_orders()  # one order at the exchange for the decision
        assert srv.stats[ORDER] == 1 and srv.faults.fired == [(ORDER, "accept_then_drop")]
        assert s.trade.amount == order.filled - order.fee_base
        assert await placed_client_ids(h) == [order.client_order_id]
        history = await h.fetch_history()
        attempts = [
            ev.activity_task_started_event_attributes.attempt
            for ev in history.events
            if ev.HasField("activity_task_started_event_attributes")
        ]
        assert 2 in attempts  # the lost response was retried, and resolved by lookup


async def test_rate_limited_create_waits_for_retry_after(dev_env, tmp_path):
    # A real-time server: the time-skipping one would skip the retry delay being measured.
    async with (
        sim_and_adapter(tmp_path, balances=USDT_ONLY) as (srv, ex),
        bench(dev_env.client, tmp_path, exchange=ex, feed=settable_feed(srv)) as b,
    ):
        srv.faults.add(FaultRule(endpoint=ORDER, kind="rate_limit", seconds=3))
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.PLACE_BUY)
        started = time.monotonic()
        s = await b.wait_phase(h, Phase.POSITION, timeout=30)
        # Temporal's own first retry would come after 1 s; Retry-After said 3.
        assert time.monotonic() - started >= 2.9
        assert srv.stats[ORDER] == 2 and len(srv.exchange.all_orders()) == 1
        assert s.trade.amount > 0


async def test_insufficient_funds_goes_idle_with_one_create(ts_env, tmp_path):
    async with (
        sim_and_adapter(tmp_path, balances={"USDT": D("50")}) as (srv, ex),
        bench(ts_env.client, tmp_path, exchange=ex, feed=settable_feed(srv)) as b,
    ):
        h = await b.start()  # budget 100 USDT, account holds 50
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        s = await b.wait_for(h, lambda s: "rejected" in s.note, what="rejection")
        assert s.phase in (Phase.IDLE, Phase.ENTRY_EVAL) and "insufficient" in s.note.lower()
        assert srv.stats[ORDER] == 1 and srv.exchange.all_orders() == []


async def test_below_the_exchange_minimum_is_never_sent(ts_env, tmp_path):
    async with (
        sim_and_adapter(tmp_path, balances=USDT_ONLY) as (srv, ex),
        bench(ts_env.client, tmp_path, exchange=ex, feed=settable_feed(srv)) as b,
    ):
        h = await b.start(trade_budget=D("3"))  # the exchange's NOTIONAL minimum is 5 USDT
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        s = await b.wait_for(h, lambda s: "minimum cost 5" in s.note, what="refusal")
        assert s.phase in (Phase.IDLE, Phase.ENTRY_EVAL)
        assert srv.stats[ORDER] == 0


async def test_dry_run_trades_on_live_prices_without_an_exchange_order(ts_env, tmp_path):
    async with sim_and_adapter(tmp_path, balances=USDT_ONLY) as (srv, live):
        feed = LiveTickerFeed()
        paper = PaperExchange(
            feed,
            db_path=tmp_path / "dry.sqlite",
            quote_balances={"USDT": D("10000")},
            name="binance",
        )
        dry = DryRunExchange(live, paper, feed)
        async with bench(ts_env.client, tmp_path, exchange=dry, feed=settable_feed(srv)) as b:
            h = await b.start()
            await _buy_then_sell(b, h)
            s = await b.wait_phase(h, Phase.COOLDOWN, timeout=40)
            metadata = await h.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
            [trade] = await b.ledger.trades()
            recent = await dry.fetch_recent_orders("BTC/USDT", since_ms=0)
        assert s.simulated and s.totals.trades_closed == 1
        assert trade.simulated and trade.exit_reason == "take_profit"
        assert [o.side for o in paper.all_orders()] == [OrderSide.BUY, OrderSide.SELL]
        assert recent == paper.all_orders()  # the order activity's lists: the paper ones
        # Priced from the exchange's live book, but no order ever reached it.
        assert srv.exchange.all_orders() == []
        assert not [
            k
            for k in srv.stats
            if k.startswith(("POST", "DELETE"))
            or "order" in k.lower()
            or "account" in k
            or "myTrades" in k
        ]
        assert srv.stats["GET /api/v3/ticker/24hr"] > 0
        assert all(t.startswith("[SIMULATED]") for t in b.notifier.sent) and b.notifier.sent
        assert "SIMULATED" in metadata.current_details


async def srv_balances(srv: SimServer) -> dict[str, D]:
    return await srv.exchange.fetch_balance()
