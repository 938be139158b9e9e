"""ERROR's reconcile on the legacy engine waits out the order consistency window from the
last moment the order may have been sent (when the order phase gave up and fell into
ERROR), not from the decision: an order whose create answer was lost, looked up through
an order query and lists that lag, is found, not concluded "never placed".

In process: the engine over the real ccxt adapter and the local Binance server (its fault
injection: a refused create, then one accepted whose answer is lost; its lookup and list
lags). The order phase tries twice (the second waits out the window after the first, so it
sends its create well after the decision) and gives up; ERROR backs off 0.2 s, far below
the 1.5 s lag, inside the 2 s window."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.exchange.sim_fixtures import settable_feed, sim_and_adapter
from tests.legacy.test_engine_start import _run_until
from trader.binance_sim import SimServer
from trader.binance_sim.faults import FaultRule
from trader.config import load_settings
from trader.core.market import Order, OrderSide
from trader.core.phases import Phase, Trigger
from trader.core.sizing import round_down
from trader.core.state import CoinState
from trader.exchange.ccxt_adapter import CcxtExchange
from trader.hub import MarketHub
from trader.ledger import LedgerStore, read_trades
from trader.legacy.engine import LegacyEngine
from trader.legacy.store import StateStore, state_path

BTC = "BTC/USDT"
CREATE = "POST /api/v3/order"
LAG_S = 1.5  # the order query and the lists miss a fresh order this long
REFUSED = FaultRule(endpoint=CREATE, kind="http_5xx", status=503)  # not taken
LOST = FaultRule(endpoint=CREATE, kind="accept_then_drop")  # taken, the answer lost


class Rig:
    """The engine on one data dir, trading BTC/USDT through ccxt at the local server."""

    def __init__(self, tmp: Path, srv: SimServer, ex: CcxtExchange) -> None:
        settings = load_settings(
            None,
            data_dir=tmp / "data",
            fsm_mode="legacy",
            backfill_minutes=0,
            max_trades=1,
            market_poll_interval_s=0.2,
            fsm_max_retries=2,  # the refused create, then the lost one: ERROR
            fsm_backoff_base_seconds=0.2,  # below the lag: the bug's condition
            order_activity_timeout_seconds=3,
            order_consistency_window_seconds=2,  # above the lag, as it must be
            balance_settle_seconds=0.2,
            cooldown_minutes=0,
            max_position_hold_minutes=0,
            trailing_enabled=False,
        )
        self.srv, self.feed = srv, settable_feed(srv)
        self.store = StateStore(state_path(tmp / "data"))
        self.ledger = LedgerStore(tmp / "data" / "ledger.sqlite")
        self.engine = LegacyEngine(
            params=settings.trader_params(),
            watchlist=[BTC],
            exchange=ex,
            hub=MarketHub(ex, poll_interval_s=0.2),
            store=self.store,
            ledger=self.ledger,
        )

    @property
    def s(self) -> CoinState:
        return self.engine.runners[BTC].s

    async def run_until(self, done: Callable[[], bool], what: str) -> None:
        await _run_until(self.engine, done, what, timeout=60)

    def orders(self) -> list[Order]:
        return [o for o in self.srv.exchange.all_orders() if o.symbol == BTC]

    def reconciled(self) -> Trigger | None:
        """The trigger ERROR left by, once it has."""
        left = [r for r in self.s.phase_history if r.src is Phase.ERROR]
        return left[-1].trigger if left else None

    async def close(self) -> None:
        self.store.close()
        await self.ledger.close()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    sim = {"lookup_lag_s": LAG_S, "list_lag_s": LAG_S}
    async with sim_and_adapter(tmp_path, sim=sim) as (srv, ex):
        r = Rig(tmp_path, srv, ex)
        yield r
        await r.close()


async def _anchored(rig: Rig) -> None:
    await rig.run_until(
        lambda: rig.s.phase is Phase.IDLE and rig.s.entry_watch.anchor > 0, "IDLE, anchored"
    )


async def test_a_buy_lost_in_error_is_found_and_held_not_recorded_flat(rig: Rig) -> None:
    await _anchored(rig)
    rig.srv.faults.add(REFUSED)
    rig.srv.faults.add(LOST)
    rig.feed.set_price(BTC, D("97"))  # 3 % below the anchor: buys
    await rig.run_until(lambda: rig.reconciled() is not None, "ERROR's reconcile")
    assert [k for _, k in rig.srv.faults.fired] == ["http_5xx", "accept_then_drop"]
    [buy] = rig.orders()
    assert buy.side is OrderSide.BUY and buy.filled > 0
    # Before the fix: RECOVERED_FLAT, the bought coins forgotten on the account.
    assert rig.reconciled() is Trigger.RECOVERED_POSITION, rig.s.phase_history[-3:]
    assert rig.s.trade.order.client_order_id == buy.client_order_id
    assert rig.s.trade.amount == buy.filled - buy.fee_base
    rig.feed.set_price(BTC, D("101"))  # above take profit (3 %): sells
    await rig.run_until(lambda: rig.s.totals.trades_closed == 1, "the exit")
    await rig.engine.flush_ledger()
    buy, sell = rig.orders()
    assert (buy.side, sell.side) == (OrderSide.BUY, OrderSide.SELL)
    [trade] = read_trades(rig.ledger.url)
    assert trade.bought_amount == buy.filled - buy.fee_base
    assert trade.sold_amount == sell.filled and trade.written_off == 0


async def test_a_sell_lost_in_error_is_found_and_counted_once(rig: Rig) -> None:
    """The account holds 1 BTC besides the trade (the fixture's balance): a sell concluded
    "never placed" would find the balance covering the position and sell again, coins that
    are not the trade's."""
    await _anchored(rig)
    rig.feed.set_price(BTC, D("97"))
    await rig.run_until(lambda: rig.s.phase is Phase.POSITION, "the position")
    rig.srv.faults.add(REFUSED)
    rig.srv.faults.add(LOST)
    rig.feed.set_price(BTC, D("101"))
    await rig.run_until(lambda: rig.reconciled() is not None, "ERROR's reconcile")
    assert [k for _, k in rig.srv.faults.fired] == ["http_5xx", "accept_then_drop"]
    buy, sell = rig.orders()
    assert rig.s.market is not None
    held = buy.filled - buy.fee_base
    assert sell.side is OrderSide.SELL and sell.filled == round_down(held, rig.s.market.amount_step)
    # Before the fix: the sell unseen, the position resumed and sold a second time.
    assert rig.reconciled() is Trigger.RECOVERED_SOLD, rig.s.phase_history[-3:]
    await rig.run_until(lambda: rig.s.totals.trades_closed == 1, "the books closed")
    await rig.engine.flush_ledger()
    assert len(rig.orders()) == 2  # no second sell
    [trade] = read_trades(rig.ledger.url)
    assert trade.sold_amount == sell.filled and trade.bought_amount == held
    assert trade.written_off == 0  # what the step left is carried, not written off
