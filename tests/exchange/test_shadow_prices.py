"""A both-mode shadow prices its simulated book from the primary's market-data hub, never by
asking the exchange: counted at the local Binance server (its per-endpoint request stats),
through the real ccxt adapter, with the shadow built as ``FSM_MODE=both`` builds it."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from tests.exchange.sim_fixtures import sim_and_adapter
from trader.binance_sim import SimServer
from trader.config import load_settings
from trader.core.market import OrderRequest, OrderSide, OrderType, TimeInForce
from trader.exchange.dry_run import DryRunExchange
from trader.exchange.port import Exchange
from trader.hub import MarketHub
from trader.runtime import hybrid

SYMBOL = "BTC/USDT"


def tickers_asked(srv: SimServer) -> int:
    return sum(n for endpoint, n in srv.stats.items() if "ticker" in endpoint)


async def _order_round(shadow: Exchange) -> None:
    """What a shadow does around one order: place, poll it, look at the book, cancel."""
    req = OrderRequest(
        symbol=SYMBOL,
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        amount=D("0.1"),
        price=D("90"),  # below the market: it rests
        time_in_force=TimeInForce.GTC,
        client_order_id="shadow-prices-1",
    )
    await shadow.create_order(req)
    await shadow.fetch_order(SYMBOL, req.client_order_id)
    await shadow.fetch_open_orders(SYMBOL)
    await shadow.cancel_order(SYMBOL, req.client_order_id)


async def test_the_shadow_asks_the_exchange_for_no_ticker(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path, fsm_mode="both", exchange="binance", watchlist=[SYMBOL]
    )
    async with sim_and_adapter(tmp_path) as (srv, real):
        # A poll interval that keeps the hub's price fresh for the whole test: its loop is
        # never started here, so every ticker request the server sees is counted below.
        hub = MarketHub(real, poll_interval_s=60.0, max_price_age_s=120.0)
        shared = hybrid.side_exchange(settings, "legacy", real, hub=hub)
        # The same shadow with no hub (as GLOBAL_TRADING=false dry-run runs): asks ``real``.
        other = settings.model_copy(update={"hybrid_primary": "legacy"})
        alone = hybrid.side_exchange(other, "fsm", real)
        assert isinstance(shared, DryRunExchange) and isinstance(alone, DryRunExchange)
        try:
            await hub.ticker(SYMBOL)  # the primary's price, in the hub
            before = tickers_asked(srv)
            await _order_round(shared)
            with_hub = tickers_asked(srv) - before
            before = tickers_asked(srv)
            await _order_round(alone)
            without_hub = tickers_asked(srv) - before
            # The shadow's warm-ups and order prices (``hub.ticker``): the hub's price too.
            assert hybrid.side_hub(settings, "fsm", hub) is hub  # the primary asks, as ever
            view = hybrid.side_hub(settings, "legacy", hub)
            before = tickers_asked(srv)
            assert (await view.ticker(SYMBOL)) == hub.latest(SYMBOL)
            view_asked = tickers_asked(srv) - before
        finally:
            await hybrid.close_side(shared, real)
            await hybrid.close_side(alone, real)
        orders_at_server = [e for e in srv.stats if "order" in e.lower()]
    assert with_hub == 0 and view_asked == 0
    assert without_hub == 4  # one per call: what the shadow cost the primary before
    assert orders_at_server == []  # and no order of the shadow ever reached the server


async def test_a_stale_price_comes_from_the_hubs_own_poll(tmp_path: Path) -> None:
    """No fresh price in the hub: the shadow waits for the hub's next batched poll (it
    subscribes), it makes no request of its own."""
    settings = load_settings(
        data_dir=tmp_path, fsm_mode="both", exchange="binance", watchlist=[SYMBOL]
    )
    async with sim_and_adapter(tmp_path) as (srv, real):
        hub = MarketHub(real, poll_interval_s=0.2)
        shared = hybrid.side_exchange(settings, "legacy", real, hub=hub)
        assert isinstance(shared, DryRunExchange)
        try:
            await shared.fetch_open_orders(SYMBOL)  # no price yet: one from the hub's poll
            assert hub.cycles >= 1 and hub.latest(SYMBOL) is not None
            assert hub.subscribers(SYMBOL) == 0  # the shadow's wait subscribed, then left
        finally:
            await hub.stop()
            await hybrid.close_side(shared, real)
        asked, cycles = tickers_asked(srv), hub.cycles
    assert cycles <= asked <= cycles + 1  # the hub's polls only (one may be cut by the stop)


async def test_a_failing_shadow_leaves_the_primarys_hub_running(tmp_path: Path) -> None:
    """The legacy engine stops the hub it was given as it ends (a failure too): as a
    shadow it is given the hub's ``SharedHub`` view, whose stop leaves the primary's poll
    loop running (no restart, no REST gap, no stream redial); the process owns the hub."""
    settings = load_settings(
        data_dir=tmp_path, fsm_mode="both", exchange="binance", watchlist=[SYMBOL]
    )
    async with sim_and_adapter(tmp_path) as (_srv, real):
        hub = MarketHub(real, poll_interval_s=0.05)
        await hub.start()
        try:
            loop = hub._task
            view = hybrid.side_hub(settings, "legacy", hub)
            await view.start()  # the shadow engine's start
            await view.stop()  # and its end
            assert hub._task is loop and loop is not None and not loop.done()
        finally:
            await hub.stop()
