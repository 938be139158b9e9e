"""The validator's check through the real ccxt adapter at the local Binance server: what it
costs the account's request budget, counted by the server."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.validator import ValidatorActivities, beating, divergence_log_path
from tests.exchange.sim_fixtures import generated_markets, sim_and_adapter
from tests.workflows.validator_rig import UNKNOWN_ORDER_ID, place_unknown_order
from trader import contracts as c
from trader.binance_sim import SimServer
from trader.core.divergence import DivergenceKind, DivergenceTracker, Tolerances
from trader.core.market import Order
from trader.exchange import ccxt_throttle
from trader.exchange.ccxt_adapter import AUDIT_SHARE, CcxtExchange
from trader.exchange.ccxt_setup import (
    configure,
    default_rate_limit_ms,
    listing_complete,
    listing_page,
    request_cost,
)
from trader.ledger import LedgerStore
from workflows.hybrid_validator import CHECK_HEARTBEAT

OPEN_ORDERS = "GET /api/v3/openOrders"


def _check(watchlist: list[str]) -> c.ValidateInput:
    setup = c.ValidatorSetup(
        exchange="binance",
        task_queue=f"none-{uuid.uuid4().hex[:8]}",  # no SymbolTrader: the exchange side only
        watchlist=watchlist,
        tolerances=Tolerances(confirm_checks=1),
    )
    return c.ValidateInput(
        validator_id="v", check=0, setup=setup, since_ts=0.0, tracker=DivergenceTracker()
    )


async def _one_check(
    env: WorkflowEnvironment, tmp_path: Path, srv: SimServer, ex: CcxtExchange, extra: int
) -> c.ValidateResult:
    """One check of BTC/USDT (an order nobody placed) and ``extra`` more symbols, counted
    from a clean slate: the server's request stats, the order client's last request."""
    await place_unknown_order(ex)
    acts = ValidatorActivities(
        env.client,
        ex,
        LedgerStore(tmp_path / "ledger.sqlite"),
        divergence_log=divergence_log_path(tmp_path),
    )
    watchlist = ["BTC/USDT", *sorted(generated_markets(extra))]
    srv.stats.clear()
    ex._ex.last_request_url = None  # the order client's: set by each request it sends
    result: c.ValidateResult = await ActivityEnvironment().run(acts.validate, _check(watchlist))
    return result


async def test_a_check_of_100_symbols_lists_open_orders_once_off_the_order_path(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with sim_and_adapter(tmp_path, extra_markets=100) as (srv, ex):
        result = await _one_check(dev_env, tmp_path, srv, ex, 100)
        # One all-symbols listing, not one request per symbol...
        assert srv.stats[OPEN_ORDERS] == 1, dict(srv.stats)
        # ...that still sees the order nobody placed...
        unknown = [d for d in result.reported if d.kind == DivergenceKind.UNKNOWN_ORDER]
        assert [(d.symbol, d.fingerprint) for d in unknown] == [("BTC/USDT", UNKNOWN_ORDER_ID)]
        # ...and neither it nor the balances are charged to the order path's throttler (an
        # order never waits behind a check).
        assert srv.stats["GET /api/v3/account"] == 1
        assert ex._ex.last_request_url is None, ex._ex.last_request_url
        # Its bucket holds one check's reads (balances 4 units, the listing 16).
        assert ex._audit.throttler.config["capacity"] == 20


class _PerSymbol(CcxtExchange):
    """The adapter as on an exchange without an all-symbols listing."""

    async def fetch_all_open_orders(self) -> list[Order] | None:
        return None


async def test_the_per_symbol_reads_are_off_the_order_path_too(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with sim_and_adapter(tmp_path, extra_markets=2, exchange_cls=_PerSymbol) as (srv, ex):
        result = await _one_check(dev_env, tmp_path, srv, ex, 2)
        assert srv.stats[OPEN_ORDERS] == 3, dict(srv.stats)
        unknown = [d for d in result.reported if d.kind == DivergenceKind.UNKNOWN_ORDER]
        assert [d.symbol for d in unknown] == ["BTC/USDT"]
        assert ex._ex.last_request_url is None, ex._ex.last_request_url


def test_a_paged_listing_is_trusted_only_short_of_a_full_page() -> None:
    """OKX, Bybit, KuCoin, Bitget page their all-symbols listing: it is asked for a page it
    fits in, and a full one (more may follow) sends that check to per-symbol reads."""
    assert listing_page("binance") is None and listing_page("kraken") is None
    page = listing_page("okx")
    assert page is not None and page <= 20  # within every paging exchange's page
    assert listing_complete("okx", page - 1) and not listing_complete("okx", page)
    assert listing_complete("binance", 10_000)


class _Clock:
    """The throttler's clock, moved by hand: nothing here waits for real time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _wait_s(cfg: dict[str, Any], costs: list[float]) -> float:
    """How long ccxt's leaky bucket holds back these requests sent together, from its state:
    a request passes once the tokens are not negative, then pays its cost."""
    tokens, waited_ms = float(cfg["tokens"]), 0.0
    for cost in costs:
        if tokens < 0:
            waited_ms += -tokens / cfg["refillRate"]
            tokens = 0.0
        tokens -= cost
    return waited_ms / 1000


async def test_one_check_fits_the_validators_bucket_on_a_slow_exchange() -> None:
    """Kraken: 1000 ms a unit, 20 s at the validator's 5 %; its balances and all-symbols
    listing cost 3 units each. In ccxt's bucket (capacity 1) the listing would wait 40 s,
    past the check's heartbeat timeout; sized to one check, both pass together, check after
    check at the 5 % rate; and a read given up while it waits holds nobody back."""
    ex = configure(
        "kraken",
        api_key=SecretStr("key"),
        api_secret=SecretStr("c2VjcmV0"),
        sandbox=False,
        api_url=None,
        timeout_s=1.0,
        rate_limit_ms=default_rate_limit_ms("kraken") / AUDIT_SHARE,
    )
    ex.markets, ex.markets_by_id = {"BTC/USD": {}}, {"XXBTZUSD": [{}]}  # loaded: no request
    try:
        balance = await request_cost(ex, ex.fetch_balance)
        listing = await request_cost(
            ex, lambda: ex.fetch_open_orders(None, None, listing_page("kraken"))
        )
        assert (balance, listing) == (3, 3)  # priced by ccxt, nothing sent
        cfg = ex.throttler.config
        assert _wait_s({**cfg, "tokens": cfg["capacity"]}, [balance, listing]) == 40  # unfit
        clock = _Clock()
        ccxt_throttle.resize(ex, balance + listing, clock=clock)
        cfg = ex.throttler.config
        budget = CHECK_HEARTBEAT.total_seconds()
        for _ in range(3):  # checks an interval apart: one check's cost at the 5 % rate
            ex.throttler.refill()  # what its loop does first
            assert _wait_s(cfg, [balance, listing]) == 0
            for cost in (balance, listing):  # the real throttler grants them at once
                await asyncio.wait_for(ex.throttle(cost), timeout=budget)
            clock.now += (balance + listing) / (cfg["refillRate"] * 1000)  # the interval
        # A read that waits (a debt: tokens below zero) and is given up (its attempt timed
        # out, cancelled): the next attempt's read is not charged for it.
        cfg["tokens"] = -balance
        given_up = asyncio.ensure_future(ex.throttle(balance))
        await asyncio.sleep(0)
        given_up.cancel()
        cfg["tokens"] = cfg["capacity"]  # paid off meanwhile (the retry's backoff)
        await asyncio.wait_for(ex.throttle(balance), timeout=budget)
        assert cfg["tokens"] == pytest.approx(cfg["capacity"] - balance)  # not 2 x balance
        assert not ex.throttler.queue
    finally:
        await ex.close()


async def test_the_validators_client_reads_markets_loaded_by_the_order_client(
    tmp_path: Path,
) -> None:
    """Markets are loaded once per process: a first reconciliation read does not make the
    validator's client load them again on its own budget."""
    async with sim_and_adapter(tmp_path) as (srv, ex):
        await ex.fetch_balances(reconcile=True)
        assert await ex.fetch_all_open_orders() == []
        assert srv.stats["GET /api/v3/exchangeInfo"] == 1, dict(srv.stats)


async def test_a_read_waiting_its_turn_heartbeats_and_gives_up_with_its_attempt() -> None:
    """A read held back by its throttler (slow pacing) heartbeats meanwhile: its turn comes
    here only once the attempt has heartbeated. Cancelled (the attempt timed out), the read
    is cancelled too: it leaves the throttler's queue instead of holding the next back."""
    env = ActivityEnvironment()
    turn = asyncio.Event()
    beats: list[tuple[object, ...]] = []

    def beat(*details: object) -> None:
        beats.append(details)
        turn.set()

    env.on_heartbeat = beat

    async def throttled() -> str:
        await turn.wait()
        return "balances"

    async def read() -> str:
        return await beating("balances", throttled(), every_s=0.05)

    # (A read that did not heartbeat would wait for ever: the timeout only ends the test.)
    assert await asyncio.wait_for(env.run(read), timeout=60) == "balances"
    assert beats[0] == ("waiting: balances",)

    gave_up = asyncio.Event()

    async def never() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            gave_up.set()
            raise

    async def stuck() -> None:
        await beating("open orders", never(), every_s=0.05)

    timed_out = ActivityEnvironment()
    timed_out.on_heartbeat = lambda *_: timed_out.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(timed_out.run(stuck), timeout=60)
    assert gave_up.is_set()
