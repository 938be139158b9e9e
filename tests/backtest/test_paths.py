"""The fast path makes exactly the reference's trades: on every real pair and on
generated random walks with gaps and flat candles, across the rules' modes."""

from __future__ import annotations

import os
import pickle
import threading
from dataclasses import fields
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SHARED_DATA
from trader.backtest.data import Series, load_path
from trader.backtest.fast import ScanStats, run_fast
from trader.backtest.generate import random_walk
from trader.backtest.parallel import pack_trade, run_parallel, unpack_trade
from trader.backtest.reference import run_reference
from trader.backtest.sim import Position, SimConfig, Trade
from trader.core.params import AnchorMode, TraderParams
from trader.core.rules import ExitReason, ExitRulesState, TrailingState

OHLCV = SHARED_DATA / "ohlcv"
BUDGETS = {"BTC": Decimal("0.002"), "ETH": Decimal("0.05")}

CASES: dict[str, dict[str, Any]] = {
    "peak": {"drop_trigger_pct": Decimal("3")},
    "fixed, two slots, kept anchor": {
        "anchor_mode": AnchorMode.FIXED,
        "drop_trigger_pct": Decimal("1.5"),
        "max_trades": 2,
        "use_drop_anchor": True,
        "trailing_enabled": False,
    },
    "window": {"anchor_mode": AnchorMode.WINDOW, "drop_lookback_seconds": 18_000},
    "guards, one slot, tight exits": {
        "drop_trigger_pct": Decimal("1"),
        "max_trades": 1,
        "sma_guard_period": 12,
        "min_quote_volume": Decimal("5"),
        "take_profit_pct": Decimal("1.5"),
        "stop_loss_pct": Decimal("1"),
        "max_hold_minutes": Decimal("0"),
        "cooldown_minutes": Decimal("0"),
    },
}


@pytest.mark.skipif(not OHLCV.is_dir(), reason="shared data not present")
@pytest.mark.parametrize("case", list(CASES))
def test_fast_equals_reference_on_every_real_pair(case: str) -> None:
    data = load_path(OHLCV)
    cfg = SimConfig(TraderParams(quote_budgets=BUDGETS, **CASES[case]))
    stats = ScanStats()
    fast = run_fast(data, cfg, stats=stats)
    reference = run_reference(data, cfg)
    assert fast == reference
    traded = [s for s, t in reference.trades.items() if t]
    assert len(traded) >= 8, f"the case must make most pairs trade: {traded}"
    candles = sum(len(s) for s in data.values())
    if case == "peak":  # (a drop blocked by a full portfolio re-fires on every point)
        assert stats.exact_points < candles, "the fast path must skip most candles"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    symbols=st.integers(1, 3),
    drop=st.sampled_from([Decimal("0.5"), Decimal("1"), Decimal("2.5")]),
    mode=st.sampled_from(list(AnchorMode)),
    max_trades=st.integers(1, 3),
    trailing=st.booleans(),
    hold=st.sampled_from([Decimal(0), Decimal(7), Decimal(90)]),
    cooldown=st.sampled_from([Decimal(0), Decimal(3), Decimal(40)]),
    flat=st.sampled_from([0.0, 0.3]),
    keep_anchor=st.booleans(),
    sma=st.sampled_from([0, 5]),
)
def test_fast_equals_reference_on_random_walks(
    seed: int,
    symbols: int,
    drop: Decimal,
    mode: AnchorMode,
    max_trades: int,
    trailing: bool,
    hold: Decimal,
    cooldown: Decimal,
    flat: float,
    keep_anchor: bool,
    sma: int,
) -> None:
    data = {
        f"S{n}/BTC": random_walk(f"S{n}/BTC", 1500, seed=seed + n, flat_rate=flat, gap_rate=0.05)
        for n in range(symbols)
    }
    params = TraderParams(
        quote_budgets=BUDGETS,
        drop_trigger_pct=drop,
        anchor_mode=mode,
        drop_lookback_seconds=1800,
        max_trades=max_trades,
        trailing_enabled=trailing,
        trailing_activation_pct=Decimal("0.3"),
        trailing_distance_pct=Decimal("0.2"),
        take_profit_pct=Decimal("1"),
        stop_loss_pct=Decimal("0.8"),
        max_hold_minutes=hold,
        cooldown_minutes=cooldown,
        use_drop_anchor=keep_anchor,
        sma_guard_period=sma,
    )
    cfg = SimConfig(params)
    assert run_fast(data, cfg) == run_reference(data, cfg)


@pytest.mark.parametrize(("max_trades", "workers"), [(2, 2), (5, 2), (5, 3)])
def test_parallel_workers_make_the_same_trades(max_trades: int, workers: int) -> None:
    """Five independent symbols (five slots) on two or three processes (the caller and
    its helpers); with two slots they interact, and run on one clock in one process: the
    same trades and stats either way."""
    data = {f"W{n}/BTC": random_walk(f"W{n}/BTC", 20_000, seed=40 + n) for n in range(5)}
    params = TraderParams(quote_budgets=BUDGETS, drop_trigger_pct=Decimal(1), max_trades=max_trades)
    cfg = SimConfig(params)
    stats, one = ScanStats(), ScanStats()
    trades = run_parallel(data, cfg, workers=workers, stats=stats)
    assert trades == run_fast(data, cfg, stats=one)
    assert sum(len(t) for t in trades.trades.values()) > 40
    # every symbol's stats come back once, from whichever process ran it
    assert (stats.exact_points, stats.scans) == (one.exact_points, one.scans)


class _DiesSent(str):
    """A symbol that kills the process pickling it, unless it is the caller: a helper
    dies in the middle of sending its result (as one killed by the OOM killer would)."""

    caller = os.getpid()

    def __reduce_ex__(self, protocol: Any) -> Any:
        if os.getpid() != self.caller:
            os._exit(3)
        return super().__reduce_ex__(protocol)


def test_a_helper_that_dies_mid_run_fails_the_run_instead_of_hanging() -> None:
    """Every symbol a helper runs kills it while it sends: the run raises (it used to hang
    when the helper died holding the pipe's lock: the others blocked on it forever)."""
    data: dict[str, Series] = {
        _DiesSent(f"D{n}/BTC"): random_walk(f"D{n}/BTC", 3_000, seed=60 + n) for n in range(6)
    }
    cfg = SimConfig(TraderParams(quote_budgets=BUDGETS, drop_trigger_pct=Decimal(1), max_trades=6))
    raised: list[BaseException] = []

    def run() -> None:
        try:
            run_parallel(data, cfg, workers=3)
        except BaseException as exc:
            raised.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=120)  # a generous deadline: the run itself takes well under a second
    assert not runner.is_alive(), "run_parallel hung after a helper died"
    [exc] = raised
    assert isinstance(exc, RuntimeError) and "died" in str(exc)


def test_a_trade_crosses_the_process_boundary_exactly() -> None:
    """The workers send trades as text (``pack_trade``): every field comes back equal, each
    Decimal with its own digits and exponent (what the files write)."""
    trade = Trade(
        symbol="ABC/BTC",
        quote="BTC",
        entry_ms=1_700_000_000_123,
        exit_ms=1_700_000_060_456,
        entry_price=Decimal("0.00012651"),
        exit_price=Decimal("0.00012400"),
        amount=Decimal("15"),
        reason=ExitReason.TRAILING_STOP,
        entry_fee=Decimal("0.0000018976500"),
        exit_fee=Decimal("0.00000186000"),
        gross=Decimal("-0.00003765"),
        net=Decimal("-0.0000413176500"),
        pct=Decimal("-2.175869865470885839069504"),
        carried_amount=Decimal("0.5"),
        carried_cost=Decimal("6.3E-7"),
        inventory_in_amount=Decimal("2"),
        inventory_in_cost=Decimal("0.00002531"),
    )
    back = unpack_trade(pickle.loads(pickle.dumps(pack_trade(trade))))
    assert back == trade
    assert [str(getattr(back, f.name)) for f in fields(Trade)] == [
        str(getattr(trade, f.name)) for f in fields(Trade)
    ]
    assert back.reason is ExitReason.TRAILING_STOP


def test_the_sims_exit_state_is_every_stateful_exit_rule() -> None:
    """The sim carries the exit rules' state as plain values (``Position.peak`` /
    ``trigger``, stepped by ``trailing_step``): a new stateful rule in ``ExitRulesState``
    must be carried there too, and this fails until it is."""
    assert set(ExitRulesState.model_fields) == {"trailing"}
    assert set(TrailingState.model_fields) == {"peak", "trigger"}
    opened = ExitRulesState.opened(Decimal("0.5"))
    assert opened == ExitRulesState(trailing=TrailingState(peak=Decimal("0.5"), trigger=0))
    assert {"peak", "trigger"} <= {f.name for f in fields(Position)}
