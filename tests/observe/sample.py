"""A phase event to feed the sink and the log in unit tests."""

from __future__ import annotations

from decimal import Decimal

from trader.observe.events import PhaseEvent


def event(
    seq: int = 1, *, run_id: str = "run-1", dst: str = "idle", trigger: str = "warmed_up"
) -> PhaseEvent:
    return PhaseEvent(
        ts=1_700_000_000.0 + seq,
        symbol="BTC/USDT",
        exchange="paper",
        src="warmup",
        dst=dst,
        trigger=trigger,
        reason="anchor 100",
        decision_id=None,
        client_order_id=None,
        order_id=None,
        price=Decimal("100.5"),
        position=Decimal(0),
        realized_pnl_total=Decimal("-1.25"),
        fees_total=Decimal("0.2"),
        simulated=True,
        workflow_id="trader:paper:BTC-USDT",
        run_id=run_id,
        seq=seq,
        src_since=1.0,
    )
