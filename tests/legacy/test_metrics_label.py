"""The legacy engine's metrics carry ``engine="legacy"``; the FSM worker's are unchanged."""

from __future__ import annotations

from decimal import Decimal

from prometheus_client import generate_latest

from trader.observe.events import PhaseEvent
from trader.observe.metrics import TraderMetrics


def _event() -> PhaseEvent:
    return PhaseEvent(
        ts=10.0, symbol="BTC/USDT", exchange="paper", src="place_buy", dst="wait_fill",
        trigger="order_placed", reason="", decision_id="d1", client_order_id="c1",
        order_id="1", price=Decimal("100"), position=Decimal(0),
        realized_pnl_total=Decimal(0), fees_total=Decimal(0), simulated=True,
        workflow_id="legacy:paper:BTC-USDT", run_id="r", seq=1, src_since=9.0,
    )  # fmt: skip


def test_every_legacy_series_has_the_engine_label() -> None:
    metrics = TraderMetrics("1@host", engine="legacy")
    metrics(_event())
    text = generate_latest(metrics.served).decode()
    samples = [line for line in text.splitlines() if line.startswith("trader_")]
    assert samples and all('engine="legacy"' in line for line in samples)
    assert (
        'trader_orders_total{engine="legacy",outcome="placed",side="buy",symbol="BTC/USDT",'
        'worker="1@host"} 1.0' in samples
    )


def test_the_fsm_worker_series_have_no_engine_label() -> None:
    metrics = TraderMetrics("1@host")
    metrics(_event())
    text = generate_latest(metrics.served).decode()
    assert metrics.served is metrics.registry
    assert "trader_orders_total" in text and "engine=" not in text
