"""Entry, guard and exit rules: parametrized tables and invariants."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trader.core.market import Ticker
from trader.core.params import AnchorMode, TraderParams
from trader.core.rules import (
    EntryWatch,
    EntryWatchState,
    ExitReason,
    ExitRulesState,
    GuardReason,
    RollingHigh,
    SmaWindow,
    TrailingState,
    check_guards,
    drop_fires,
    evaluate_entry,
    evaluate_exit,
    exit_levels,
    exit_reason,
    failed_guard,
    next_anchor,
    trailing_step,
    update_exit_rules,
    update_trailing,
)

P = TraderParams(
    drop_trigger_pct=D("2"),
    take_profit_pct=D("3"),
    stop_loss_pct=D("2"),
    trailing_activation_pct=D("1"),
    trailing_distance_pct=D("0.5"),
    max_hold_minutes=D("60"),
    max_spread_bps=D("50"),
    min_quote_volume=D("1000"),
    sma_guard_period=0,
)
prices = st.decimals(min_value=D("0.00000100"), max_value=D("100000"), places=8)


@pytest.mark.parametrize(
    ("price", "anchor", "fired"),
    [
        ("98", "100", True),
        ("98.01", "100", False),
        ("50", "100", True),
        ("0.00005194", "0.000053", True),
        ("0.00005195", "0.000053", False),
        ("1", "0", False),
    ],
)
def test_drop_trigger(price, anchor, fired):
    signal = evaluate_entry(D(price), D(anchor), P)
    assert signal.triggered is fired
    assert (signal.reason is not None) is fired


@pytest.mark.parametrize(
    ("mode", "anchor", "price", "window_high", "expected"),
    [
        (AnchorMode.PEAK, "100", "101", None, "101"),
        (AnchorMode.PEAK, "100", "99", None, "100"),
        (AnchorMode.PEAK, "0", "99", None, "99"),
        (AnchorMode.FIXED, "100", "120", None, "100"),
        (AnchorMode.FIXED, "0", "120", None, "120"),
        (AnchorMode.WINDOW, "100", "90", "95", "95"),
    ],
)
def test_next_anchor(mode, anchor, price, window_high, expected):
    high = D(window_high) if window_high else None
    assert next_anchor(D(anchor), D(price), mode, window_high=high) == D(expected)


@given(st.lists(prices, min_size=1, max_size=50))
def test_peak_anchor_never_lowers(seq):
    anchor = D(0)
    for price in seq:
        new = next_anchor(anchor, price, AnchorMode.PEAK)
        assert new >= anchor
        anchor = new
    assert anchor == max(seq)


@given(st.lists(st.tuples(st.integers(0, 10), prices), min_size=1, max_size=60), st.integers(1, 30))
def test_rolling_high_equals_brute_force(steps, lookback):
    window, ts, seen = RollingHigh(lookback), 0, []
    for gap, price in steps:
        ts += gap
        window.add(ts, price)
        seen.append((ts, price))
        assert window.high() == max(p for t, p in seen if t >= ts - lookback)


@given(st.lists(prices, min_size=1, max_size=40), st.integers(1, 8))
def test_sma_equals_brute_force(seq, period):
    sma = SmaWindow(period)
    for i, price in enumerate(seq):
        sma.add(price)
        expected = sum(seq[i + 1 - period : i + 1]) / period if i + 1 >= period else None
        assert sma.value() == expected


def _ticker(bid="99.9", ask="100.1", last="100", volume="5000"):
    return Ticker(
        symbol="BTC/USDT", ts_ms=0, bid=D(bid), ask=D(ask), last=D(last), quote_volume=D(volume)
    )


@pytest.mark.parametrize(
    ("ticker", "params", "sma", "reason"),
    [
        (_ticker(), P, None, None),
        (_ticker(bid="99.7", ask="100.3"), P, None, GuardReason.SPREAD_TOO_WIDE),  # 60 bps
        (_ticker(bid="99.75", ask="100.25"), P, None, None),  # exactly 50 bps
        (_ticker(volume="999"), P, None, GuardReason.VOLUME_TOO_LOW),
        (_ticker(), P.model_copy(update={"sma_guard_period": 20}), None, GuardReason.SMA_NOT_READY),
        (
            _ticker(last="100"),
            P.model_copy(update={"sma_guard_period": 20}),
            D("100"),
            GuardReason.BELOW_SMA,
        ),
        (_ticker(last="100"), P.model_copy(update={"sma_guard_period": 20}), D("99.99"), None),
    ],
)
def test_guards(ticker, params, sma, reason):
    decision = check_guards(ticker, params, sma=sma)
    assert decision.reason is reason and decision.passed is (reason is None)
    assert decision.detail


@pytest.mark.parametrize(
    ("price", "trailing", "held_s", "reason"),
    [
        ("97.99", "0", 0, ExitReason.STOP_LOSS),
        ("98", "0", 0, ExitReason.STOP_LOSS),
        ("98.01", "0", 0, None),
        ("103", "0", 0, ExitReason.TAKE_PROFIT),
        ("102.99", "0", 0, None),
        ("101.4", "101.5", 0, ExitReason.TRAILING_STOP),
        ("101.6", "101.5", 0, None),
        ("100", "0", 3600, ExitReason.MAX_HOLD),
        ("100", "0", 3599, None),
        ("97", "101.5", 3600, ExitReason.STOP_LOSS),  # stop-loss has priority
    ],
)
def test_exit_rules(price, trailing, held_s, reason):
    decision = evaluate_exit(
        price=D(price),
        entry_price=D(100),
        rules=ExitRulesState(trailing=TrailingState(peak=D(102), trigger=D(trailing))),
        entry_ts=1000.0,
        now=1000.0 + held_s,
        params=P,
    )
    assert decision.reason is reason and decision.exit is (reason is not None)


@pytest.mark.parametrize(("price", "reason"), [("100", None), ("97", ExitReason.STOP_LOSS)])
def test_without_a_clock_max_hold_is_left_to_the_callers_timer(price, reason):
    # The SymbolTrader's exit watch: the workflow's max-hold timer is that rule's one clock.
    decision = evaluate_exit(
        price=D(price),
        entry_price=D(100),
        rules=ExitRulesState.opened(D(100)),
        entry_ts=1000.0,
        now=None,
        params=P,
    )
    assert decision.reason is reason and decision.exit is (reason is not None)


def test_exit_levels_and_disabled_levels():
    assert exit_levels(D(100), P) == (D("103"), D("98"))
    off = P.model_copy(
        update={
            "take_profit_pct": D(0),
            "stop_loss_pct": D(0),
            "max_hold_minutes": D(0),
            "trailing_enabled": False,
        }
    )
    assert exit_levels(D(100), off) == (D(0), D(0))
    assert not evaluate_exit(
        price=D(1),
        entry_price=D(100),
        rules=ExitRulesState(trailing=TrailingState(peak=D(100), trigger=D(0))),
        entry_ts=0,
        now=10**9,
        params=off,
    ).exit


def test_trailing_arms_at_activation_then_follows_the_peak():
    state = TrailingState(peak=D(100), trigger=D(0))
    state = update_trailing(state, D("100.99"), D(100), P)
    assert state.trigger == 0  # below +1 %
    state = update_trailing(state, D("101"), D(100), P)
    assert state.trigger == D("101") * D("0.995")
    state = update_trailing(state, D("104"), D(100), P)
    assert state.trigger == D("104") * D("0.995") and state.peak == D(104)


@given(st.lists(prices, min_size=1, max_size=60))
def test_trailing_trigger_never_lowers(seq):
    state = TrailingState(peak=D(0), trigger=D(0))
    for price in seq:
        new = update_trailing(state, price, seq[0], P)
        assert new.trigger >= state.trigger and new.peak >= state.peak
        state = new


# --- the hot-path forms (the backtest's): the same answers as the decisions ---------------
@given(prices, prices, prices, st.integers(0, 7200), st.booleans(), st.integers(0, 30))
def test_the_plain_exit_step_equals_the_decisions(
    entry: D, seen: D, price: D, held_s: int, trailing: bool, sma_period: int
) -> None:
    p = P.model_copy(update={"trailing_enabled": trailing, "sma_guard_period": sma_period})
    state = update_exit_rules(ExitRulesState.opened(entry), seen, entry, p)
    peak, trigger = trailing_step(entry, D(0), seen, entry, p)
    assert TrailingState(peak=peak, trigger=trigger) == state.trailing
    decision = evaluate_exit(
        price=price, entry_price=entry, rules=state, entry_ts=0.0, now=held_s, params=p
    )
    reason = exit_reason(
        price=price,
        entry_price=entry,
        trailing_trigger=trigger,
        entry_ts=0.0,
        now=held_s,
        params=p,
    )
    assert reason == decision.reason
    assert decision.exit == (reason is not None)


@given(prices, st.integers(0, 100), st.sampled_from([D(0), D(500), D(5000)]), st.booleans())
def test_the_plain_guards_equal_the_decisions(
    bid: D, spread_ticks: int, volume: D, sma_ready: bool
) -> None:
    ask = bid + spread_ticks * D("0.00000001")
    for period in (0, 3):
        p = P.model_copy(update={"sma_guard_period": period})
        sma = bid if sma_ready else None
        ticker = Ticker(symbol="X/Y", ts_ms=0, bid=bid, ask=ask, last=ask, quote_volume=volume)
        decision = check_guards(ticker, p, sma=sma)
        reason = failed_guard(p, bid=bid, ask=ask, last=ask, quote_volume=volume, sma=sma)
        assert reason == decision.reason
        assert decision.passed == (reason is None)


@given(st.lists(prices, min_size=1, max_size=30), st.sampled_from(list(AnchorMode)))
def test_the_watchs_step_equals_its_signal(seq: list[D], mode: AnchorMode) -> None:
    p = P.model_copy(update={"anchor_mode": mode, "drop_lookback_seconds": 5})
    seeing, stepping = EntryWatch(EntryWatchState(), p), EntryWatch(EntryWatchState(), p)
    for n, price in enumerate(seq):
        signal = seeing.see(n * 1000, price)
        assert stepping.step(n * 1000, price) == signal.triggered
        assert signal.triggered == drop_fires(price, signal.anchor, p)
        assert stepping.state() == seeing.state()
