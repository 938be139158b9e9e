"""Ambiguous creates under a lagging order query (issue 8, item 9), through real SymbolTrader
workflows, the real ccxt client and the local Binance server over HTTP: the order query and
lists lag 2.5 s behind a fresh order, a final order's client id is accepted again, 10 % of
the creates lose their response and 5 % of all requests fail with 5xx or 429. Every decision
yields at most one order at the exchange, and the ledger matches the fills."""

from __future__ import annotations

from tests.workflows.campaign import Campaign, run_campaign


async def test_lost_creates_under_a_lagging_lookup_make_one_order_per_decision(dev_env, tmp_path):
    # A real-time server: the time-skipping one would skip the retry backoffs whose length
    # the window is measured against.
    figures = await run_campaign(dev_env.client, tmp_path, Campaign())
    print("campaign:", figures.as_dict())
    assert figures.decisions >= 30 and figures.trades_closed == 8 * 3
    assert figures.lost_responses >= 2 and figures.http_5xx + figures.rate_limited >= 5
    assert figures.duplicates == 0 and figures.stray_orders == 0
    assert figures.orders_at_server == figures.decisions - figures.decisions_without_order
    assert figures.mismatches == []
