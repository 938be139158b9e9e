"""ERROR's reconcile waits out the order consistency window from the last moment the order
may have been sent (when the order phase gave up and fell into ERROR), not from the
decision: an order whose create answer was lost, looked up through an order query and lists
that lag, is found, not concluded "never placed" (as tests/legacy/test_error_window.py on
the legacy engine).

A real-time Temporal server (the window is real time at the exchange), the real ccxt
adapter and the local Binance server with its fault injection: a refused create, then one
accepted whose answer is lost, and its lookup and list lags. The place_order activity tries
twice (the second waits out the window after the first, so it sends its create well after
the decision) and gives up; ERROR backs off 0.2 s (a timer: ~1 s on a stock server), below
the 1.5 s lag, inside the 2 s window."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.exchange.sim_fixtures import settable_feed, sim_and_adapter
from tests.workflows.harness import Bench, TraderHandle, bench
from trader.binance_sim import SimServer
from trader.binance_sim.faults import FaultRule
from trader.core.market import Order, OrderSide
from trader.core.phases import Phase, Trigger
from trader.core.sizing import round_down
from trader.core.state import CoinState

BTC = "BTC/USDT"
CREATE = "POST /api/v3/order"
LAG_S = 1.5  # the order query and the lists miss a fresh order this long
WINDOW_S = 2.0  # above the lag, as it must be
REFUSED = FaultRule(endpoint=CREATE, kind="http_5xx", status=503)  # not taken
LOST = FaultRule(endpoint=CREATE, kind="accept_then_drop")  # taken, the answer lost


@dataclass
class Rig:
    srv: SimServer
    b: Bench
    h: TraderHandle

    def orders(self) -> list[Order]:
        return [o for o in self.srv.exchange.all_orders() if o.symbol == BTC]

    async def reconciled(self) -> CoinState:
        """The state once ERROR has been left (by its reconcile)."""
        return await self.b.wait_for(
            self.h, lambda s: _left_error(s) is not None, timeout=60, what="ERROR's reconcile"
        )


def _left_error(s: CoinState) -> Trigger | None:
    left = [r for r in s.phase_history if r.src is Phase.ERROR]
    return left[-1].trigger if left else None


@pytest.fixture
async def rig(
    dev_env: WorkflowEnvironment, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Rig]:
    sim = getattr(request, "param", {"lookup_lag_s": LAG_S, "list_lag_s": LAG_S})
    async with (
        sim_and_adapter(tmp_path, sim=sim) as (srv, ex),
        bench(
            dev_env.client, tmp_path, exchange=ex, feed=settable_feed(srv), order_window_s=WINDOW_S
        ) as b,
    ):
        h = await b.start(
            max_trades=1,
            fsm_max_retries=2,  # the refused create, then the lost one: ERROR
            fsm_backoff_base_seconds=0.2,  # below the lag: the bug's condition
            order_consistency_window_seconds=WINDOW_S,
            balance_settle_seconds=0.2,
        )
        await b.wait_phase(h, Phase.IDLE)
        yield Rig(srv, b, h)


async def test_a_buy_lost_in_error_is_found_and_held_not_recorded_flat(rig: Rig) -> None:
    rig.srv.faults.add(REFUSED)
    rig.srv.faults.add(LOST)
    rig.b.set_price(BTC, "97.90")  # 2.1 % below the anchor: buys
    s = await rig.reconciled()
    assert [k for _, k in rig.srv.faults.fired] == ["http_5xx", "accept_then_drop"]
    [buy] = rig.orders()
    assert buy.side is OrderSide.BUY and buy.filled > 0
    # Before the fix: RECOVERED_FLAT, the bought coins forgotten on the account.
    assert _left_error(s) is Trigger.RECOVERED_POSITION, s.phase_history[-3:]
    assert s.trade.order.client_order_id == buy.client_order_id
    assert s.trade.amount == buy.filled - buy.fee_base
    rig.b.set_price(BTC, "101.50")  # above take profit (3 %): sells
    await rig.b.wait_for(rig.h, lambda s: s.totals.trades_closed == 1, timeout=40, what="exit")
    buy, sell = rig.orders()
    assert (buy.side, sell.side) == (OrderSide.BUY, OrderSide.SELL)
    [trade] = await rig.b.ledger.trades()
    assert trade.bought_amount == buy.filled - buy.fee_base
    assert trade.sold_amount == sell.filled and trade.written_off == 0


@pytest.mark.parametrize("rig", [{"lookup_lag_s": 3.0, "list_lag_s": 0.5}], indirect=True)
async def test_a_buy_the_order_query_misses_past_the_window_is_found_in_the_lists(
    rig: Rig,
) -> None:
    """Binance's order query can lag far longer than its lists (and than the window): the
    reconcile asks the open and recent orders too, as the order activity's retry does."""
    rig.srv.faults.add(REFUSED)
    rig.srv.faults.add(LOST)
    rig.b.set_price(BTC, "97.90")
    s = await rig.reconciled()
    [buy] = rig.orders()
    assert buy.side is OrderSide.BUY and buy.filled > 0
    # With the order query alone: RECOVERED_FLAT, the bought coins forgotten.
    assert _left_error(s) is Trigger.RECOVERED_POSITION, s.phase_history[-3:]
    assert s.trade.amount == buy.filled - buy.fee_base


async def test_a_sell_lost_in_error_is_found_and_counted_once(rig: Rig) -> None:
    """The account holds 1 BTC besides the trade (the fixture's balance): a sell concluded
    "never placed" would find the balance covering the position and sell again, coins that
    are not the trade's."""
    rig.b.set_price(BTC, "97.90")
    await rig.b.wait_phase(rig.h, Phase.POSITION, timeout=30)
    rig.srv.faults.add(REFUSED)
    rig.srv.faults.add(LOST)
    rig.b.set_price(BTC, "101.50")
    s = await rig.reconciled()
    assert [k for _, k in rig.srv.faults.fired] == ["http_5xx", "accept_then_drop"]
    buy, sell = rig.orders()
    assert s.market is not None
    held = buy.filled - buy.fee_base
    assert sell.side is OrderSide.SELL and sell.filled == round_down(held, s.market.amount_step)
    # Before the fix: the sell unseen, the position resumed and sold a second time.
    assert _left_error(s) is Trigger.RECOVERED_SOLD, s.phase_history[-3:]
    await rig.b.wait_for(rig.h, lambda s: s.totals.trades_closed == 1, timeout=40, what="books")
    assert len(rig.orders()) == 2  # no second sell
    [trade] = await rig.b.ledger.trades()
    assert trade.sold_amount == sell.filled and trade.bought_amount == held
    assert trade.written_off == 0  # what the step left is carried, not written off
