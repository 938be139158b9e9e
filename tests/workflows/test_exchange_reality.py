"""Money-correct under exchange reality (the exchange-reality patch), through real workflows
on the time-skipping (or dev) server over the paper exchange: sell what the account holds,
never hide a loss, no orphaned remainder, minimums at the bid, a backoff that grows, a
flatten that always works, standing exits, kept drops, and reconciliation on resume."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal as D

import pytest

from tests.hang_guard import bounded
from tests.timeskip import skip
from tests.workflows.harness import MARKETS, Bench, TraderHandle, bench, path_of, resumed_state
from trader import contracts as c
from trader.core.errors import RetryableExchangeError
from trader.core.market import Order, OrderRequest, OrderSide, OrderType, TimeInForce
from trader.core.phases import Phase
from trader.core.sizing import round_down
from trader.core.state import CoinState
from trader.exchange.feed import StaticFeed
from trader.exchange.paper import PaperExchange, PaperFaults
from trader.runtime.launch import resumable_state
from trader.runtime.reconcile import request_reconciles

STEP = D("0.0001")


async def _to_position(b: Bench, h: TraderHandle, price: str = "97.90") -> CoinState:
    await b.wait_phase(h, Phase.IDLE)
    b.set_price("BTC/USDT", price)
    return await b.wait_phase(h, Phase.POSITION)


async def _sell_refused(b: Bench, h: TraderHandle) -> None:
    """In POSITION, then every sell is refused and the stop-loss fires: into ERROR."""
    await _to_position(b, h)
    b.exchange.faults = PaperFaults(reject_creates_with="InsufficientFunds")
    b.set_price("BTC/USDT", "95.00")


def _sells(b: Bench) -> list[Order]:
    return [o for o in b.exchange.all_orders() if o.side is OrderSide.SELL]


async def _usdt(b: Bench) -> D:
    return (await b.exchange.fetch_balance()).get("USDT", D(0))


async def test_sells_what_the_account_holds_and_books_the_shortfall(ts_env, tmp_path):
    """Landed code: PLACE_SELL -> InsufficientFunds -> ERROR -> POSITION -> ... forever."""
    async with bench(ts_env.client, tmp_path) as b:
        h = await b.start()
        s = await _to_position(b, h)
        held = s.trade.amount
        short = round_down(held * D("0.9"), STEP)  # e.g. a manual sell of 10 %
        b.exchange.set_balance("BTC", short)
        b.set_price("BTC/USDT", "95.00")  # stop-loss
        s = await b.wait_phase(h, Phase.COOLDOWN, timeout=30)
        assert "error" not in path_of(s)
        [sell] = _sells(b)
        assert sell.amount == sell.filled == short
        [trade] = await b.ledger.trades()
        assert trade.sold_amount == short and trade.written_off == held - short
        assert trade.carried_amount == 0
        # The missing coins' cost is part of the loss: everything bought is closed.
        assert (
            trade.net_pnl
            == trade.exit_proceeds - trade.entry_cost - trade.entry_fee - trade.exit_fee
        )
        assert s.totals.realized_pnl == trade.net_pnl < 0
        [row] = await b.ledger.inventory()
        assert (row.kind, row.amount) == ("shortfall", held - short)
        assert (row.engine, row.simulated) == ("fsm", True)  # the workflows, on paper
        assert row.cost == (trade.entry_cost + trade.entry_fee) * (held - short) / held
        assert any("shortfall" in t for t in b.notifier.sent)
        assert (await b.exchange.fetch_balance())["BTC"] == 0


async def test_unsellable_exit_is_carried_and_realized_by_the_next_trade(fresh_ts_env, tmp_path):
    """trade_budget 5.05 with a 5 USDT minimum: the stop-loss at 95 leaves 4.89 USDT of
    coins. Landed code: a trade of net 0, the entry fee and the loss gone, coins orphaned."""
    env = fresh_ts_env
    async with bench(env.client, tmp_path) as b:
        start_usdt = await _usdt(b)
        h = await b.start(trade_budget=D("5.05"))
        first = await _to_position(b, h)
        b.set_price("BTC/USDT", "95.00")
        s = await b.wait_phase(h, Phase.COOLDOWN, timeout=30)
        assert _sells(b) == []  # nothing the exchange would refuse is ever sent
        assert "dust_remainder" in [r.trigger.value for r in s.phase_history]
        [t1] = await b.ledger.trades()
        assert (t1.sold_amount, t1.net_pnl, t1.carried_amount) == (D(0), D(0), first.trade.amount)
        assert t1.carried_cost == first.trade.entry_cost + first.trade.entry_fee
        assert s.inventory.amount == first.trade.amount
        assert s.inventory.cost + s.inventory.fee == t1.carried_cost
        [row] = await b.ledger.inventory()
        assert (row.kind, row.amount, row.cost) == ("carried", first.trade.amount, t1.carried_cost)
        assert any("inventory" in t for t in b.notifier.sent)

        await skip(env, 15 * 60 + 1)  # cooldown
        s = await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "93.00")  # 2 % below the fresh anchor (95)
        s = await b.wait_phase(h, Phase.POSITION, timeout=30)
        buy2 = [o for o in b.exchange.all_orders() if o.side is OrderSide.BUY][1]
        assert s.trade.amount == buy2.filled + first.trade.amount and s.inventory.amount == 0
        b.set_price("BTC/USDT", "99.00")  # take-profit on the blended entry
        s = await b.wait_for(h, lambda s: s.totals.trades_closed == 2, timeout=30, what="trade 2")
        t2 = next(t for t in (await b.ledger.trades()) if t.trade_id != t1.trade_id)
        assert t2.inventory_in_amount == first.trade.amount
        assert t2.bought_amount == buy2.filled + first.trade.amount == t2.sold_amount
        # No loss hidden: the account's quote moved by exactly the realized PnL of both.
        assert await _usdt(b) - start_usdt == t1.net_pnl + t2.net_pnl == s.totals.realized_pnl
        assert (await b.exchange.fetch_balance())["BTC"] == 0


async def test_a_tradeable_remainder_past_95_percent_is_sold(ts_env, tmp_path):
    """Landed code: 96 % sold closes the trade and ~0.4 BTC (~40 USDT) stays orphaned."""
    async with bench(ts_env.client, tmp_path) as b:
        h = await b.start(trade_budget=D("1000"))
        s = await _to_position(b, h)
        b.exchange.faults = PaperFaults(max_fill_ratio=D("0.96"))
        b.set_price("BTC/USDT", "101.50")
        s = await b.wait_phase(h, Phase.COOLDOWN, timeout=40)
        first, second = _sells(b)
        assert first.type is OrderType.LIMIT and second.type is OrderType.MARKET
        assert second.amount == first.amount - first.filled  # the whole rest, at market
        [trade] = await b.ledger.trades()
        assert trade.sold_amount == first.filled + second.filled
        left = trade.bought_amount - trade.sold_amount
        assert left == trade.carried_amount == s.inventory.amount
        assert left * D("101.45") < 5  # only what the exchange cannot take is kept
        assert (await b.exchange.fetch_balance())["BTC"] == left


async def test_the_minimum_is_checked_at_the_bid(ts_env, tmp_path):
    """0.0515 BTC at last 97.10 is 5.0007 USDT, at the bid 97.05 4.998: below the 5 USDT
    minimum. Landed code: the sell is sent, refused as invalid, retried into ERROR."""
    async with bench(ts_env.client, tmp_path) as b:
        h = await b.start(trade_budget=D("5.05"), cooldown_minutes=D(0))
        s = await _to_position(b, h)
        assert s.trade.amount == D("0.0515")
        b.set_price("BTC/USDT", "97.10")
        await b.wait_for(h, lambda s: s.current_price == D("97.10"), what="the price seen")
        await h.signal("force_exit", c.ForceExitRequest(reason="flatten"))
        s = await b.wait_for(
            h,
            lambda s: s.totals.trades_closed == 1 and s.phase is Phase.IDLE,
            what="the trade closed",
        )
        triggers = [r.trigger.value for r in s.phase_history]
        assert "order_rejected" not in triggers and "failed" not in triggers
        assert _sells(b) == [] and s.inventory.amount == D("0.0515")
        # Stopped flat but with inventory: the next start hands it back (never forgotten).
        await h.signal("shutdown", c.ShutdownRequest())
        await bounded(h.result(), 120, "the stopped trader")
        resumed = await resumable_state(
            ts_env.client.get_workflow_handle(h.id, result_type=CoinState)
        )
        assert resumed is not None and resumed.inventory.amount == D("0.0515")


async def test_error_backoff_doubles_and_resets_only_on_success(fresh_ts_env, tmp_path):
    """Landed code: a fixed ~20 s forever (reset by every watch return, counted twice)."""
    env = fresh_ts_env
    async with bench(env.client, tmp_path) as b:
        h = await b.start()
        await _sell_refused(b, h)
        for _ in range(12):  # skip the backoff timers (time skips only when asked)
            if (await b.state(h)).error_count >= 4:
                break
            await skip(env, 25)
        await b.wait_for(h, lambda s: s.error_count >= 4, what="4 errors")
        backoffs = [t for t in await _timers_s(h) if t <= 300]
        assert backoffs[:4] == [10, 20, 40, 80]
        b.exchange.faults = None
        await skip(env, 300)
        s = await b.wait_phase(h, Phase.COOLDOWN, timeout=30)
        assert s.retry_count == 0 and len(_sells(b)) == 1


async def test_force_exit_in_error_reconciles_and_sells_at_once(dev_env, tmp_path):
    """A real-time server: the backoff (120 s) must not be waited. Landed code: the force
    exit is rejected in ERROR ("no position")."""
    async with bench(dev_env.client, tmp_path) as b:
        h = await b.start(fsm_backoff_base_seconds=120)
        await _sell_refused(b, h)
        await b.wait_phase(h, Phase.ERROR, timeout=30)
        b.exchange.faults = None
        asked = time.monotonic()
        result = await bounded(
            h.execute_update(
                "request_exit", c.ForceExitRequest(reason="flatten"), result_type=c.ForceExitResult
            ),
            60,
            "request_exit",
        )
        assert result.accepted and result.phase == "error"
        # Not the 120 s backoff: a bound far from both it and a loaded machine's slowness.
        await b.wait_phase(h, Phase.COOLDOWN, timeout=110)
        assert time.monotonic() - asked < 100
        [trade] = await b.ledger.trades()
        assert trade.exit_reason == "force_exit" and trade.sold_amount == trade.bought_amount


async def test_force_exit_during_place_buy_sells_what_the_buy_filled(ts_env, tmp_path):
    """PLACE_BUY: the buy may already be at the exchange, so it completes, and whatever it
    filled is sold at once, without ever holding the position."""
    async with bench(ts_env.client, tmp_path) as b:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.exchange.faults = PaperFaults(create_latency_s=2)
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.PLACE_BUY)
        await h.signal("force_exit", c.ForceExitRequest(reason="abort"))
        s = await b.wait_phase(h, Phase.COOLDOWN, timeout=30)
        path = path_of(s)
        assert path[3:7] == ["place_buy", "wait_fill", "place_sell", "wait_sell_fill"]
        assert "position" not in path
        buy, sell = b.exchange.all_orders()
        assert (
            sell.filled == buy.filled and (await b.ledger.trades())[0].exit_reason == "force_exit"
        )


async def test_a_standing_exit_survives_recovery(fresh_ts_env, tmp_path):
    """The stop-loss fired, its sell failed, the price bounced. Landed code: re-armed and
    held again."""
    env = fresh_ts_env
    async with bench(env.client, tmp_path) as b:
        h = await b.start()
        await _sell_refused(b, h)
        await b.wait_phase(h, Phase.ERROR)
        b.set_price("BTC/USDT", "98.50")  # inside TP/SL again
        b.exchange.faults = None
        await skip(env, 11)
        s = await b.wait_phase(h, Phase.COOLDOWN, timeout=30)
        [trade] = await b.ledger.trades()
        assert trade.exit_reason == "stop_loss"
        after = path_of(s)[path_of(s).index("error") :]
        assert after[:4] == ["error", "position", "exit_eval", "place_sell"]


async def test_a_guard_blocked_drop_enters_when_the_guard_clears(ts_env, tmp_path):
    """Landed code: the block resets the anchor, and the drop that still holds is lost."""
    async with bench(ts_env.client, tmp_path) as b:
        h = await b.start(max_spread_bps=D(5))  # the paper book's spread is 10 bps
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        s = await b.wait_for(h, lambda s: s.entry_watch.recheck == "guards", what="a blocked drop")
        assert "the drop stands" in s.note
        await asyncio.sleep(1.5)
        b.exchange.spread_bps = D(2)  # the guard clears; the price has not moved
        s = await b.wait_phase(h, Phase.POSITION, timeout=20)
        triggers = [r.trigger.value for r in s.phase_history]
        assert triggers.count("guards_blocked") == 1  # blocked once, not in a loop
        assert s.entry_watch.recheck == ""


async def test_a_drop_without_a_slot_enters_when_a_slot_frees(ts_env, tmp_path):
    """Landed code: NO_SLOT resets the anchor; the ETH drop is never bought."""
    async with bench(ts_env.client, tmp_path) as b:
        btc = await b.start("BTC/USDT", max_trades=1)
        eth = await b.start("ETH/USDT", max_trades=1)
        await b.wait_phase(eth, Phase.IDLE)
        await _to_position(b, btc)
        b.set_price("ETH/USDT", "1950")
        await b.wait_for(eth, lambda s: s.entry_watch.recheck == "slot", what="no slot")
        await asyncio.sleep(1.5)
        assert (await b.state(eth)).phase is Phase.IDLE
        b.set_price("BTC/USDT", "101.50")  # BTC takes profit and frees its slot
        s = await b.wait_phase(eth, Phase.POSITION, timeout=30)
        assert [r.trigger.value for r in s.phase_history].count("no_slot") == 1


@pytest.mark.parametrize("keep", [True, False])
async def test_use_drop_anchor_keeps_the_anchor_across_a_trade(fresh_ts_env, tmp_path, keep):
    env = fresh_ts_env
    async with bench(env.client, tmp_path) as b:
        h = await b.start(use_drop_anchor=keep)
        await _to_position(b, h)
        b.set_price("BTC/USDT", "101.50")
        await b.wait_phase(h, Phase.COOLDOWN)
        b.set_price("BTC/USDT", "99.00")
        # The cooldown is skipped in a blink of wall time: let the hub's last BTC ticker
        # (101.50, from before the cooldown) age as it would, so the watch never sees it.
        await asyncio.sleep(1.5)
        await skip(env, 15 * 60 + 1)
        # Without keeping, the anchor is unset until the watch's first checkpoint reports
        # the first fresh price it saw.
        s = await b.wait_for(
            h,
            lambda s: s.phase is Phase.IDLE and s.entry_watch.anchor > 0,
            what="an anchor in IDLE",
        )
        # The drop of the first entry was measured from 100 (the warm-up price).
        assert s.entry_watch.anchor == (D("100") if keep else D("99.00"))


async def test_a_resumed_position_is_reconciled_before_trading_on(ts_env, tmp_path):
    """Stopped with a position; 20 % of the coins were sold by hand meanwhile. Landed
    code: the resumed symbol trusts its memory until its sell is refused.

    No max hold: waiting for a result lets the shared time-skipping server jump to the
    next timer of any workflow on it (hours, under xdist), and a position resumed past
    its max hold sells at once (safely: the sell checks the account too), which is not
    what this test is about."""
    async with bench(ts_env.client, tmp_path) as b:
        h = await b.start(max_hold_minutes=D(0))
        s = await _to_position(b, h)
        await h.signal("shutdown", c.ShutdownRequest(close_position=False))
        final = await bounded(h.result(), 120, "the stopped trader")
        b.exchange.set_balance("BTC", round_down(final.trade.amount * D("0.8"), STEP))
        resumed = await b.start(state=resumed_state(final), max_hold_minutes=D(0))
        s = await b.wait_for(
            resumed, lambda s: "reconcile (resumed" in s.note, what="the reconciliation"
        )
        assert s.phase is Phase.POSITION and s.trade.written_off == final.trade.amount - round_down(
            final.trade.amount * D("0.8"), STEP
        )
        assert [r.kind for r in (await b.ledger.inventory())] == ["shortfall"]
        assert any("shortfall" in t for t in b.notifier.sent)


async def test_a_worker_start_asks_holding_symbols_to_reconcile(dev_env, tmp_path):
    # The dev server: the time-skipping one has no visibility list.
    async with bench(dev_env.client, tmp_path) as b:
        holder = await b.start("BTC/USDT")
        idle = await b.start("ETH/USDT")
        await b.wait_phase(idle, Phase.IDLE)
        await _to_position(b, holder)
        asked = await request_reconciles(dev_env.client, b.task_queue, reason="worker w2 started")
        assert asked == [holder.id]
        s = await b.wait_for(
            holder, lambda s: "reconcile (worker w2 started)" in s.note, what="the reconciliation"
        )
        assert "covering" in s.note and s.trade.written_off == 0 and s.phase is Phase.POSITION


async def test_force_exit_with_sells_still_failing_backs_off(dev_env, tmp_path):
    """A force exit cuts one backoff short, not every one: a sell that keeps failing must not
    spin ERROR -> POSITION -> PLACE_SELL -> ERROR (a review found 72 ERRORs in 10 s)."""
    async with bench(dev_env.client, tmp_path) as b:
        h = await b.start(fsm_backoff_base_seconds=120)
        await _sell_refused(b, h)
        s = await b.wait_phase(h, Phase.ERROR, timeout=30)
        before = s.error_count
        await h.signal("force_exit", c.ForceExitRequest(reason="flatten"))
        # The force exit ends the backoff: reconciled, its sell refused, ERROR again (waited
        # for, where a fixed 8 s could end before it on a loaded machine) ...
        s = await b.wait_for(
            h,
            lambda s: (
                s.error_count > before
                and "reconciled" in [r.note.split(":")[0] for r in s.phase_history]
            ),
            timeout=60,
            what="the force exit's reconcile and refused sell",
        )
        # ... then the 120 s backoff: a spin would make errors every fraction of a second.
        await asyncio.sleep(5)
        s = await b.state(h)
        assert s.error_count - before == 1 and s.trade.force_exit_reason == "flatten"


async def test_coins_locked_by_another_order_are_not_closed_as_inventory(fresh_ts_env, tmp_path):
    """A resting order (the operator's, another bot's) locks the coins: the exit cannot sell
    now, but the position is ~100 USDT, not dust. It waits in ERROR, exit kept, and sells
    once the coins are free. Found by review: closed as "inventory below the minimum"."""
    env = fresh_ts_env
    async with bench(env.client, tmp_path) as b:
        h = await b.start()
        s = await _to_position(b, h)
        await b.exchange.create_order(
            OrderRequest(
                symbol="BTC/USDT",
                side=OrderSide.SELL,
                type=OrderType.LIMIT,
                amount=s.trade.amount,
                price=D("150"),
                time_in_force=TimeInForce.GTC,
                client_order_id="manual-1",
            )
        )
        b.set_price("BTC/USDT", "95.00")  # stop-loss
        s = await b.wait_phase(h, Phase.ERROR, timeout=30)
        assert (
            "locked" in s.note
            and s.totals.trades_closed == 0
            and s.trade.exit_reason == "stop_loss"
        )
        await b.exchange.cancel_order("BTC/USDT", "manual-1")
        await skip(env, 11)
        s = await b.wait_phase(h, Phase.COOLDOWN, timeout=30)
        [trade] = await b.ledger.trades()
        assert trade.exit_reason == "stop_loss" and trade.carried_amount == 0
        assert trade.sold_amount == trade.bought_amount


async def test_failing_buys_back_off_too(fresh_ts_env, tmp_path):
    """Creates that keep failing: ERROR -> IDLE -> the drop again -> ERROR. A granted slot
    is no proof the exchange works: the backoff must grow (review: 10, 10, 10, 10)."""
    env = fresh_ts_env
    async with bench(env.client, tmp_path) as b:
        # Two attempts per create: the backoff under test is the workflow's, between
        # ERRORs; the activity's own retries wait in real time here (1 + 2 + 4 + 8 s each).
        h = await b.start(fsm_max_retries=2)
        await b.wait_phase(h, Phase.IDLE)
        b.exchange.faults = PaperFaults(fail_creates=10**6)
        price = D("97.90")
        b.set_price("BTC/USDT", str(price))
        deadline = time.monotonic() + 120
        while (s := await b.state(h)).error_count < 4:
            assert time.monotonic() < deadline, f"{s.error_count} errors; {s.phase}: {s.note}"
            if s.phase is Phase.ERROR:
                # The backoff is a workflow timer: skipped, and no further, for what is left
                # of a skip once the next watch locks the clock passes in real time.
                await skip(env, (await _timers_s(h))[-1] + 0.5)
            elif s.phase is Phase.IDLE:
                # A new drop each time (the failed entry restarted the anchor), a second
                # apart: a drop that came before the new watch's first tick became its
                # anchor, and the next one is a drop from it.
                price = (price * D("0.97")).quantize(D("0.01"))
                b.set_price("BTC/USDT", str(price))
                await asyncio.sleep(1)
            else:
                await asyncio.sleep(0.1)
        assert [t for t in await _timers_s(h) if t <= 300][:4] == [10, 20, 40, 80]
        assert b.exchange.all_orders() == []


async def _timers_s(h: TraderHandle) -> list[float]:
    """Every workflow timer the run started, in order (its duration in seconds)."""
    history = await h.fetch_history()
    return [
        e.timer_started_event_attributes.start_to_fire_timeout.ToSeconds()
        for e in history.events
        if e.HasField("timer_started_event_attributes")
    ]


async def test_inventory_the_account_no_longer_holds_is_a_realized_loss(ts_env, tmp_path):
    async with bench(ts_env.client, tmp_path) as b:
        h = await b.start(trade_budget=D("5.05"), cooldown_minutes=D(0))
        await _to_position(b, h)
        b.set_price("BTC/USDT", "95.00")  # unsellable: carried
        s = await b.wait_for(
            h, lambda s: s.has_inventory and s.phase is Phase.IDLE, what="inventory, flat"
        )
        cost = s.inventory.cost + s.inventory.fee
        b.exchange.set_balance("BTC", D(0))  # withdrawn by hand
        await h.signal("reconcile", c.ReconcileRequest(reason="operator"))
        # Done once the note says so: it is written after the ledger row, and a query
        # between the two would see the inventory gone but not yet reported.
        s = await b.wait_for(
            h, lambda s: "reconcile (operator)" in s.note, what="the reported write-off"
        )
        assert not s.has_inventory
        assert s.totals.realized_pnl == -cost and "inventory" in s.note
        kinds = [(r.kind, r.cost) for r in (await b.ledger.inventory())]
        assert kinds == [("carried", cost), ("inventory_write_off", cost)]
        # The ledger's total agrees with the symbol's: nothing hidden, nothing twice.
        assert (await b.ledger.total_pnl(simulated=True)) == s.totals.realized_pnl


async def test_a_resumed_flat_symbol_warms_up_again(ts_env, tmp_path):
    """Stopped flat with inventory: resumed through WARMUP (fresh market data, and a fresh
    anchor unless USE_DROP_ANCHOR), not in IDLE with the anchor of days ago."""
    async with bench(ts_env.client, tmp_path) as b:
        h = await b.start(trade_budget=D("5.05"), cooldown_minutes=D(0))
        await _to_position(b, h)
        b.set_price("BTC/USDT", "95.00")
        await b.wait_for(
            h, lambda s: s.has_inventory and s.phase is Phase.IDLE, what="inventory, flat"
        )
        await h.signal("shutdown", c.ShutdownRequest())
        await bounded(h.result(), 120, "the stopped trader")
        b.set_price("BTC/USDT", "80.00")  # days later
        state = await resumable_state(
            ts_env.client.get_workflow_handle(h.id, result_type=CoinState)
        )
        assert state is not None and state.phase is Phase.WARMUP
        resumed = await b.start(state=state)
        s = await b.wait_for(
            resumed,
            lambda s: s.phase is Phase.IDLE and "reconcile (resumed" in s.note,
            what="warmed up, checked",
        )
        warmed = [r for r in s.phase_history if r.trigger.value == "warmed_up"]
        assert warmed[-1].note == "anchor 80.00" and s.inventory.amount > 0
        assert b.exchange.all_orders()[-1].side is OrderSide.BUY  # nothing bought on resume


async def test_slot_board_waits_when_the_portfolio_cannot_answer(ts_env, tmp_path):
    """An unknown number of free slots means "wait": a watch that fired on it would cycle
    IDLE <-> ENTRY_EVAL against a full Portfolio on every tick."""
    from activities.portfolio import SlotBoard

    board = SlotBoard(ts_env.client)
    assert await board.free("portfolio:nobody") == 0
    async with bench(ts_env.client, tmp_path) as b:
        btc = await b.start("BTC/USDT", max_trades=1)
        await _to_position(b, btc)  # the Portfolio exists and is full
        assert await board.free(b.portfolio_id, fresh=True) == 0
        b.set_price("BTC/USDT", "101.50")
        await b.wait_phase(btc, Phase.COOLDOWN)
        await asyncio.sleep(0.5)  # the release is a signal
        assert await board.free(b.portfolio_id, fresh=True) == 1


class _BalanceOutage(PaperExchange):
    """The paper exchange whose balance reads fail (retryably) once ``fail_after`` of them
    have succeeded: an exchange going down between two reads of one reconciliation."""

    fail_after: int | None = None
    reads = 0

    async def fetch_balances(self, *, reconcile: bool = False):  # noqa: ANN201
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise RetryableExchangeError("balance endpoint down")
        return await super().fetch_balances(reconcile=reconcile)


async def test_a_reconciliation_whose_confirming_read_fails_reports_and_trades_on(ts_env, tmp_path):
    """The shortfall seen by a requested reconciliation is confirmed by a second read; if
    that read cannot be had, the check is reported and the symbol goes on. It must never
    fail the workflow task (which Temporal would retry forever)."""
    feed = StaticFeed(dict(MARKETS))
    ex = _BalanceOutage(
        feed, db_path=tmp_path / "paper.sqlite", quote_balances={"USDT": D("10000")}
    )
    async with bench(ts_env.client, tmp_path, exchange=ex, feed=feed) as b:
        h = await b.start(balance_settle_seconds=0)
        s = await _to_position(b, h)
        ex.set_balance("BTC", round_down(s.trade.amount * D("0.5"), STEP))
        ex.fail_after = ex.reads + 1  # the first read of the check works, the confirm fails
        await h.signal("reconcile", c.ReconcileRequest(reason="operator"))
        s = await b.wait_for(
            h,
            lambda s: "reconcile (operator) failed" in s.note,
            timeout=40,
            what="the failed check reported",
        )
        assert s.phase is Phase.POSITION and s.trade.written_off == 0  # nothing on one read
        history = await h.fetch_history()
        assert not [
            e for e in history.events if e.HasField("workflow_task_failed_event_attributes")
        ]
