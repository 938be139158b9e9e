"""The validator's check through the real ccxt adapter at the local Binance server: what it
costs the account's request budget, counted by the server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.validator import ValidatorActivities, divergence_log_path
from tests.exchange.sim_fixtures import generated_markets, sim_and_adapter
from tests.workflows.validator_rig import UNKNOWN_ORDER_ID, place_unknown_order
from trader import contracts as c
from trader.core.divergence import DivergenceKind, DivergenceTracker, Tolerances
from trader.exchange.ccxt_setup import configure, credit_idle
from trader.ledger import LedgerStore

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


async def test_a_check_of_100_symbols_lists_open_orders_once_off_the_order_path(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with sim_and_adapter(tmp_path, extra_markets=100) as (srv, ex):
        await place_unknown_order(ex)
        acts = ValidatorActivities(
            dev_env.client,
            ex,
            LedgerStore(tmp_path / "ledger.sqlite"),
            divergence_log=divergence_log_path(tmp_path),
        )
        watchlist = ["BTC/USDT", *sorted(generated_markets(100))]
        srv.stats.clear()
        ex._ex.last_request_url = None  # the order client's: set by each request it sends
        result = await ActivityEnvironment().run(acts.validate, _check(watchlist))
        # One all-symbols listing, not one request per symbol...
        assert srv.stats[OPEN_ORDERS] == 1, dict(srv.stats)
        # ...that still sees the order nobody placed...
        unknown = [d for d in result.reported if d.kind is DivergenceKind.UNKNOWN_ORDER]
        assert [(d.symbol, d.fingerprint) for d in unknown] == [("BTC/USDT", UNKNOWN_ORDER_ID)]
        # ...and neither it nor the balances are charged to the order path's throttler (an
        # order never waits behind a check).
        assert srv.stats["GET /api/v3/account"] == 1
        assert ex._ex.last_request_url is None, ex._ex.last_request_url


async def test_the_validators_client_is_credited_the_time_it_was_idle() -> None:
    """ccxt refills its bucket only while a request waits: without the credit, each check's
    listing would wait for the previous check's cost (16 s on Binance at the validator's
    share) however long ago that was."""
    ex = configure(  # 1 s per unit: the validator's 5 % of Binance's 50 ms
        "binance",
        api_key=None,
        api_secret=None,
        sandbox=False,
        api_url=None,
        timeout_s=1.0,
        rate_limit_ms=1000.0,
    )
    try:
        cfg = ex.throttler.config
        cfg["tokens"] = -16.0  # a listing just paid for
        credit_idle(ex, 4.0)
        assert cfg["tokens"] == pytest.approx(-12.0)
        credit_idle(ex, 3600.0)  # an interval later: paid, and no more than a full bucket
        assert cfg["tokens"] == cfg["capacity"]
    finally:
        await ex.close()
