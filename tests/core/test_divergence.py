"""The hybrid validator's comparison (pure): each divergence kind, the tolerances, and the
tracker that reports a divergence once per episode."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.markets import BTC_USDT, ETH_USDT
from trader.core import divergence as dv
from trader.core.divergence import DivergenceKind as K
from trader.core.market import MarketInfo, OrderSide
from trader.core.messages import format_divergence
from trader.core.phases import Phase, Trigger
from trader.core.state import CoinState, OrderInFlight, PhaseRecord

ETH_BTC = MarketInfo(
    symbol="ETH/BTC", base="ETH", quote="BTC", price_tick=D("0.00001"), amount_step=D("0.001")
)


def coin(
    phase: Phase = Phase.IDLE,
    *,
    market: MarketInfo = BTC_USDT,
    amount: str = "0",
    inventory: str = "0",
    order: tuple[OrderSide, str, str] | None = None,
) -> CoinState:
    s = CoinState(symbol=market.symbol, market=market, phase=phase)
    s.trade.amount = D(amount)
    s.inventory.amount = D(inventory)
    if order is not None:
        side, qty, cid = order
        s.trade.order = OrderInFlight(client_order_id=cid, side=side, amount=D(qty))
    return s


def view(*coins: CoinState, trades: list[dv.TradeView] | None = None) -> dv.EngineView:
    return dv.EngineView(symbols={s.symbol: dv.SideView.of(s) for s in coins}, trades=trades or [])


def trade(reason: str = "take_profit", amount: str = "1", price: str = "98", pnl: str = "3"):
    return dv.TradeView(
        symbol="BTC/USDT",
        exit_reason=reason,
        amount=D(amount),
        entry_price=D(price),
        net_pnl=D(pnl),
        closed_ts=1.0,
    )


@pytest.mark.parametrize(
    ("phase", "amount", "cls"),
    [
        (Phase.WARMUP, "0", "flat"),
        (Phase.IDLE, "0", "flat"),
        (Phase.ENTRY_EVAL, "0", "flat"),
        (Phase.COOLDOWN, "0", "flat"),
        (Phase.PLACE_BUY, "0", "buying"),
        (Phase.WAIT_FILL, "0", "buying"),
        (Phase.POSITION, "1", "holding"),
        (Phase.EXIT_EVAL, "1", "holding"),
        (Phase.PLACE_SELL, "1", "selling"),
        (Phase.WAIT_SELL_FILL, "1", "selling"),
        (Phase.POST_TRADE, "1", "selling"),
        (Phase.ERROR, "1", "holding"),  # ERROR never forgets a position
        (Phase.ERROR, "0", "flat"),
    ],
)
def test_every_phase_has_a_class(phase, amount, cls):
    assert dv.SideView.of(coin(phase, amount=amount)).phase_class.value == cls


def test_engines_that_agree_have_no_divergence():
    a = coin(Phase.WAIT_FILL, order=(OrderSide.BUY, "1.02", "dt-fsm"))
    b = coin(Phase.PLACE_BUY, order=(OrderSide.BUY, "1.02", "dt-legacy"))  # ids differ
    assert dv.compare_engines(view(a, trades=[trade()]), view(b, trades=[trade()])) == []


def test_a_phase_class_difference_names_both_phases():
    [d] = dv.compare_engines(view(coin(Phase.COOLDOWN)), view(coin(Phase.POSITION, amount="1")))
    assert (d.kind, d.symbol, d.values) == (
        K.PHASE_CLASS,
        "BTC/USDT",
        {"fsm": "cooldown", "legacy": "position"},
    )
    assert d.key == "phase_class:BTC/USDT:flat/holding"


def test_positions_agree_within_a_step_or_the_relative_tolerance():
    fsm = view(coin(Phase.POSITION, amount="1.0000"))
    assert dv.compare_engines(fsm, view(coin(Phase.POSITION, amount="1.0001"))) == []  # a step
    assert dv.compare_engines(fsm, view(coin(Phase.POSITION, amount="1.0009"))) == []  # 0.09 %
    [d] = dv.compare_engines(fsm, view(coin(Phase.POSITION, amount="1.002")))
    assert d.kind is K.POSITION and d.values == {"fsm": "1", "legacy": "1.002"}


def test_an_order_in_flight_on_one_side_only():
    a = coin(Phase.POSITION, amount="1")
    b = coin(Phase.ERROR, amount="1", order=(OrderSide.SELL, "1", "dt-x"))
    [d] = dv.compare_engines(view(a), view(b))
    assert d.kind is K.OPEN_ORDER and d.values == {"fsm": "none", "legacy": "sell 1"}


def test_a_symbol_run_by_one_engine_only():
    [d] = dv.compare_engines(view(coin(), coin(market=ETH_USDT)), view(coin()))
    assert (d.kind, d.symbol, d.values) == (
        K.SYMBOL_MISSING,
        "ETH/USDT",
        {"fsm": "running", "legacy": "absent"},
    )


def test_trade_lists_differ_at_the_first_different_trade_and_in_pnl():
    fsm = view(coin(), trades=[trade(), trade(pnl="2")])
    legacy = view(coin(), trades=[trade(), trade("stop_loss", pnl="-2")])
    kinds = {d.kind: d for d in dv.compare_engines(fsm, legacy)}
    assert set(kinds) == {K.TRADES, K.REALIZED_PNL}
    assert kinds[K.TRADES].fingerprint == "trade2"
    assert kinds[K.REALIZED_PNL].values == {"fsm": "5", "legacy": "1"}


def test_trades_agree_within_the_price_and_pnl_tolerances():
    fsm = view(coin(), trades=[trade(price="98.00", pnl="3.000")])
    legacy = view(coin(), trades=[trade(price="98.15", pnl="3.009")])  # 0.15 %, 0.009 quote
    assert dv.compare_engines(fsm, legacy) == []
    [d] = dv.compare_engines(fsm, view(coin(), trades=[trade(price="98.3", pnl="3")]))
    assert d.kind is K.TRADES


def test_a_missing_trade_is_a_trades_and_a_pnl_divergence():
    kinds = [d.kind for d in dv.compare_engines(view(coin(), trades=[trade()]), view(coin()))]
    assert kinds == [K.TRADES, K.REALIZED_PNL]


def account(balances: dict[str, str], *orders: dv.ExchangeOrder) -> dv.ExchangeView:
    return dv.ExchangeView(
        balances={k: D(v) for k, v in balances.items()}, open_orders=list(orders)
    )


def ex_order(cid: str, side: OrderSide = OrderSide.BUY) -> dv.ExchangeOrder:
    return dv.ExchangeOrder(
        symbol="BTC/USDT", client_order_id=cid, order_id="7", side=side, amount=D("0.5")
    )


def test_an_open_order_nobody_knows():
    bot = view(coin(Phase.WAIT_FILL, order=(OrderSide.BUY, "1", "dt-mine")))
    [d] = dv.compare_exchange(
        bot, account({"BTC": "0"}, ex_order("dt-mine"), ex_order("manual-1")), engine="fsm"
    )
    assert (d.kind, d.symbol, d.fingerprint) == (K.UNKNOWN_ORDER, "BTC/USDT", "manual-1")
    assert d.values == {"exchange": "buy 0.5", "fsm": "unknown"}


def test_an_order_the_symbol_no_longer_has_in_flight_is_unknown():
    # The symbol moved on (its last order's id is still in its state): an order left open.
    bot = view(coin(Phase.POSITION, amount="1", order=(OrderSide.BUY, "1", "dt-old")))
    [d] = dv.compare_exchange(bot, account({"BTC": "1"}, ex_order("dt-old")), engine="fsm")
    assert d.kind is K.UNKNOWN_ORDER


def test_balances_against_positions_inventory_and_dust():
    holding = view(coin(Phase.POSITION, amount="1", inventory="0.0003"))
    assert dv.compare_exchange(holding, account({"BTC": "1.0003"}), engine="fsm") == []
    assert dv.compare_exchange(holding, account({"BTC": "1.0004"}), engine="fsm") == []  # 1 step
    dust = {"BTC": D("0.002")}
    assert dv.compare_exchange(holding, account({"BTC": "1.0023"}), engine="fsm", dust=dust) == []
    [short] = dv.compare_exchange(holding, account({"BTC": "0.9"}), engine="legacy")
    assert short.kind is K.BALANCE_SHORT and short.symbol == "BTC"
    assert short.values == {"exchange": "0.9", "legacy": "1.0003"}
    [none] = dv.compare_exchange(holding, account({}), engine="fsm")
    assert none.kind is K.POSITION_WITHOUT_BALANCE
    [more] = dv.compare_exchange(view(coin()), account({"BTC": "0.5"}), engine="fsm")
    assert more.kind is K.BALANCE_SURPLUS


def test_a_currency_with_an_order_in_flight_is_not_balance_checked():
    # Its balance moves before the engine's state does (a fill seen by one, not the other).
    buying = view(coin(Phase.WAIT_FILL, order=(OrderSide.BUY, "1", "dt-1")))
    assert dv.compare_exchange(buying, account({"BTC": "1"}, ex_order("dt-1")), engine="fsm") == []
    in_error = view(coin(Phase.ERROR, amount="1"))
    assert dv.compare_exchange(in_error, account({}), engine="fsm") == []


def test_a_currency_that_is_also_a_quote_is_not_checked_for_a_surplus():
    # BTC pays for ETH/BTC's entries: what it sells comes back as BTC the symbols don't hold.
    bot = view(coin(Phase.POSITION, amount="1"), coin(market=ETH_BTC))
    assert dv.compare_exchange(bot, account({"BTC": "1.5"}), engine="fsm") == []
    assert [
        x.kind
        for x in dv.compare_exchange(
            view(coin(Phase.POSITION, amount="1")), account({"BTC": "1.5"}), engine="fsm"
        )
    ] == [K.BALANCE_SURPLUS]


def d(kind: K = K.PHASE_CLASS, fp: str = "flat/holding") -> dv.Divergence:
    return dv.Divergence(kind=kind, symbol="BTC/USDT", detail="x", values={}, fingerprint=fp)


CLEAR = 3
"""``clear_checks`` of these tests: absent on 3 consecutive checks ends an episode."""


def _track(
    t: dv.DivergenceTracker, current: list[dv.Divergence], *, confirm_checks: int
) -> tuple[dv.DivergenceTracker, list[dv.Divergence]]:
    return dv.track(t, current, confirm_checks=confirm_checks, clear_checks=CLEAR)


def test_a_divergence_is_reported_after_confirm_checks_then_not_again():
    t = dv.DivergenceTracker()
    t, new = _track(t, [d()], confirm_checks=2)
    assert new == []  # seen once: the engines may be a moment apart
    t, new = _track(t, [d()], confirm_checks=2)
    assert new == [d()]
    for _ in range(5):
        t, new = _track(t, [d()], confirm_checks=2)
        assert new == []


def test_a_divergence_seen_once_then_gone_is_never_reported():
    t, _ = _track(dv.DivergenceTracker(), [d()], confirm_checks=2)
    t, new = _track(t, [], confirm_checks=2)
    t, new2 = _track(t, [d()], confirm_checks=2)
    assert new == new2 == [] and t.seen == {d().key: 1}


def test_one_that_blinks_out_for_fewer_than_clear_checks_is_the_same_episode():
    t, new = _track(dv.DivergenceTracker(), [d()], confirm_checks=1)
    assert new == [d()]
    for gap in range(1, CLEAR):  # present, absent `gap` checks, present: not again
        for _ in range(gap):
            t, new = _track(t, [], confirm_checks=1)
            assert new == [] and t.reported == [d().key]
        t, new = _track(t, [d()], confirm_checks=1)
        assert new == [], gap
    assert t.absent == {}  # seen again: the count of absent checks starts over


def test_one_absent_for_clear_checks_and_back_is_reported_again():
    t, new = _track(dv.DivergenceTracker(), [d()], confirm_checks=1)
    assert new == [d()]
    for i in range(CLEAR):
        t, new = _track(t, [], confirm_checks=1)
        assert new == []
        assert t.reported == ([] if i == CLEAR - 1 else [d().key])
    assert t.absent == {}
    t, new = _track(t, [d()], confirm_checks=1)
    assert new == [d()]


def test_a_changed_divergence_is_a_new_one():
    t, _ = _track(dv.DivergenceTracker(), [d()], confirm_checks=1)
    t, new = _track(t, [d(fp="flat/selling")], confirm_checks=1)
    assert new == [d(fp="flat/selling")]
    assert t.reported == [d().key, d(fp="flat/selling").key]  # the old one until it clears


def test_the_tracker_carried_by_an_older_validator_still_loads():
    """A continue-as-new input (or an activity result in a history) from before
    ``absent``: the reported keys are kept, none is absent yet."""
    old = {"seen": {d().key: 4}, "reported": [d().key]}
    t = dv.DivergenceTracker.model_validate(old)
    assert t.absent == {}
    t, new = _track(t, [], confirm_checks=2)
    assert new == [] and t.reported == [d().key] and t.absent == {d().key: 1}


@given(st.lists(st.lists(st.sampled_from(["a", "b", "c"]), max_size=3), max_size=16))
def test_each_episode_is_reported_exactly_once(checks):
    """Whatever the sequence: a key is reported once it is in ``confirm_checks`` consecutive
    checks, then not again until it has been out of ``CLEAR`` consecutive checks."""
    t, reported = dv.DivergenceTracker(), []
    for keys in checks:
        t, new = _track(t, [d(fp=k) for k in set(keys)], confirm_checks=2)
        reported += [n.fingerprint for n in new]
    expected = []
    for k in "abc":
        # The presence of k check by check, as text: an episode is a run of presence
        # (reaching 2) up to a gap of CLEAR absences.
        marks = "".join("x" if k in keys else "." for keys in checks)
        for episode in marks.split("." * CLEAR):
            if "xx" in episode:
                expected.append(k)
    assert sorted(reported) == sorted(expected)


def test_the_message_names_kind_detail_and_both_sides():
    text = format_divergence(
        kind="balance_short",
        detail="BTC: 1 held, 0.9 on the account",
        values={"fsm": "1", "exchange": "0.9"},
    )
    assert (
        text == "⚠ divergence balance_short: BTC: 1 held, 0.9 on the account [exchange=0.9, fsm=1]"
    )


# --- review fixes ----------------------------------------------------------------------------
def unreadable(*coins: CoinState, missing: list[str]) -> dv.EngineView:
    return view(*coins).model_copy(update={"unreadable": missing})


def test_a_symbol_whose_state_cannot_be_read_is_not_gone():
    # Its own order is not unknown, its currency is not checked, and it is reported as such.
    bot = unreadable(missing=["BTC/USDT"])
    out = dv.compare_exchange(bot, account({"BTC": "3"}, ex_order("dt-mine")), engine="fsm")
    assert out == []
    [d] = dv.compare_running(bot, watchlist=["BTC/USDT"])
    assert (d.kind, d.symbol) == (K.FSM_STATE_UNAVAILABLE, "BTC/USDT")
    # Against the legacy engine: not a missing symbol either.
    assert dv.compare_engines(bot, view(coin(Phase.POSITION, amount="1"))) == []


def test_a_watchlist_symbol_with_no_running_workflow_is_reported_and_its_coins_checked():
    bot = view(coin(market=ETH_USDT))
    [d] = dv.compare_running(bot, watchlist=["BTC/USDT", "ETH/USDT"])
    assert (d.kind, d.symbol) == (K.SYMBOL_NOT_RUNNING, "BTC/USDT")
    # Its position (held by nobody now) and its order are still checked.
    out = dv.compare_exchange(
        bot, account({"BTC": "1"}, ex_order("dt-orphan")), engine="fsm", watchlist=["BTC/USDT"]
    )
    assert {x.kind for x in out} == {K.UNKNOWN_ORDER, K.BALANCE_SURPLUS}


def test_a_filled_order_is_not_in_flight_in_error():
    s = coin(Phase.ERROR, amount="1", order=(OrderSide.BUY, "1", "dt-1"))
    s.trade.order.filled_applied = D("1")
    v = dv.SideView.of(s)
    assert v.order_side is None and v.client_order_id is None
    assert dv.compare_engines(view(s), view(coin(Phase.POSITION, amount="1"))) == []


def _errored_from(phase: Phase, s: CoinState) -> CoinState:
    s.phase_history = [PhaseRecord(ts=1, src=phase, dst=Phase.ERROR, trigger=list(Trigger)[0])]
    return s


def test_error_is_classed_by_the_phase_it_came_from():
    s = _errored_from(Phase.WAIT_FILL, coin(Phase.ERROR, order=(OrderSide.BUY, "1", "dt-1")))
    assert dv.SideView.of(s).phase_class is dv.PhaseClass.BUYING
    legacy = coin(Phase.WAIT_FILL, order=(OrderSide.BUY, "1", "dt-l"))
    assert dv.compare_engines(view(s), view(legacy)) == []


def test_positions_are_compared_only_when_both_hold():
    # A resting buy partly filled against a shadow filled at once: the orders agree.
    a = coin(Phase.WAIT_FILL, amount="0.3", order=(OrderSide.BUY, "1", "dt-a"))
    b = coin(Phase.WAIT_FILL, amount="1", order=(OrderSide.BUY, "1", "dt-b"))
    assert dv.compare_engines(view(a), view(b)) == []
    [d] = dv.compare_engines(
        view(a), view(coin(Phase.WAIT_FILL, order=(OrderSide.BUY, "2", "dt-b")))
    )
    assert d.kind is K.OPEN_ORDER


def test_a_currency_that_is_also_a_quote_is_still_checked_for_a_shortfall():
    bot = view(coin(Phase.POSITION, amount="1"), coin(market=ETH_BTC))
    [d] = dv.compare_exchange(bot, account({"BTC": "0.5"}), engine="fsm")
    assert d.kind is K.BALANCE_SHORT
    [d] = dv.compare_exchange(bot, account({}), engine="fsm")
    assert d.kind is K.POSITION_WITHOUT_BALANCE


def test_a_growing_shortfall_is_a_new_divergence():
    holding = view(coin(Phase.POSITION, amount="1"))
    keys = [
        dv.compare_exchange(holding, account({"BTC": b}), engine="fsm")[0].key
        for b in ("0.99", "0.985", "0.7", "0.01")
    ]
    assert keys[0] == keys[1]  # a little more of the same: one episode
    assert len(set(keys)) == 3


def test_orders_of_a_symbol_that_cannot_be_read_are_a_divergence_of_their_own():
    ex = account({"BTC": "1"}).model_copy(update={"unreadable": {"BTC/USDT": "BadSymbol"}})
    [d] = dv.compare_exchange(view(coin(Phase.POSITION, amount="1")), ex, engine="fsm")
    assert (d.kind, d.symbol) == (K.ORDERS_UNAVAILABLE, "BTC/USDT")


def test_without_dust_rows_only_a_shortfall_is_reported():
    # The ledger is down: the dust is unknown, so "more on the account" may be dust.
    idle = view(coin())
    assert dv.compare_exchange(idle, account({"BTC": "0.5"}), engine="fsm", dust=None) == []
    holding = view(coin(Phase.POSITION, amount="1"))
    [d] = dv.compare_exchange(holding, account({"BTC": "0.5"}), engine="fsm", dust=None)
    assert d.kind is K.BALANCE_SHORT


def test_known_ids_are_matched_in_the_form_the_exchange_shows():
    # OKX: our 36-char ids are sent as digests; another worker lists them as such.
    bot = view(coin(Phase.WAIT_FILL, order=(OrderSide.BUY, "1", "dt-mine")))
    shown = account({"BTC": "0"}, ex_order("digest-of-dt-mine"))
    assert [x.kind for x in dv.compare_exchange(bot, shown, engine="fsm")] == [K.UNKNOWN_ORDER]

    def digest(cid: str) -> str:
        return f"digest-of-{cid}"

    assert dv.compare_exchange(bot, shown, engine="fsm", exchange_id=digest) == []


def test_balances_agree_within_the_relative_tolerance_as_documented():
    # docs/migration.md, "Tolerances": one step or 0.1 % of the larger, balances included.
    holding = view(coin(Phase.POSITION, amount="10"))
    assert dv.compare_exchange(holding, account({"BTC": "9.991"}), engine="fsm") == []
    [d] = dv.compare_exchange(holding, account({"BTC": "9.98"}), engine="fsm")
    assert d.kind is K.BALANCE_SHORT


def test_a_watchlist_symbol_not_running_in_the_fsm_is_reported_once():
    # compare_running reports it (symbol_not_running); not a second time as symbol_missing.
    legacy = view(coin(Phase.POSITION, amount="1"))
    assert dv.compare_engines(view(), legacy, watchlist=["BTC/USDT"]) == []
    [d] = dv.compare_engines(view(), legacy)
    assert d.kind is K.SYMBOL_MISSING


def test_the_ledger_s_two_reads_are_two_divergences():
    trades, dust = (
        dv.ledger_unavailable("ledger trades", "x"),
        dv.ledger_unavailable("ledger dust", "x"),
    )
    assert trades.key != dust.key


def test_a_standing_surplus_keeps_its_key_while_positions_open_and_close():
    """Coins of the operator's own (found in a 10-minute demo run: 10,000 BTC on the paper
    account) are one divergence, not a new one each time a trade opens or closes."""
    flat = view(coin())
    holding = view(coin(Phase.POSITION, amount="0.0015"))
    keys = {
        dv.compare_exchange(flat, account({"BTC": "10000"}), engine="fsm")[0].key,
        dv.compare_exchange(holding, account({"BTC": "10000.0015"}), engine="fsm")[0].key,
    }
    assert len(keys) == 1


# --- a whole side missing --------------------------------------------------------------------
def _down(*symbols: str, answered: tuple[str, ...] = ()) -> dv.EngineView:
    """The FSM side with ``symbols`` unreadable, all but ``answered`` for want of a worker."""
    return dv.EngineView(
        unreadable=sorted(symbols), unanswered=sorted(set(symbols) - set(answered))
    )


def test_an_fsm_side_no_worker_answers_is_one_divergence_for_the_side():
    sides = dv.missing_sides(_down("BTC/USDT", "ETH/USDT"), None)
    [d] = sides.divergences
    assert (sides.fsm, sides.legacy) == (True, False)
    assert (d.kind, d.symbol, d.key) == (K.SIDE_MISSING, "fsm", "side_missing:fsm:")
    assert d.values == {"fsm": "2 unanswered"}


@pytest.mark.parametrize(
    "fsm",
    [
        _down("BTC/USDT", answered=("BTC/USDT",)),  # a worker answered, with an error
        _down("BTC/USDT").model_copy(update={"symbols": view(coin(market=ETH_USDT)).symbols}),
        dv.EngineView(),  # nothing running: symbol_not_running per watchlist symbol
    ],
)
def test_a_side_with_one_answer_or_nothing_running_is_not_missing(fsm):
    assert dv.missing_sides(fsm, None) == dv.MissingSides()


def test_a_legacy_side_with_no_state_is_one_divergence_only_in_both_mode():
    fsm = view(coin(), coin(market=ETH_USDT))
    sides = dv.missing_sides(fsm, dv.EngineView())
    [d] = sides.divergences
    assert (d.kind, d.symbol, sides.fsm, sides.legacy) == (K.SIDE_MISSING, "legacy", False, True)
    nothing = dv.MissingSides()
    assert dv.missing_sides(fsm, view(coin())) == nothing  # one row is enough: per symbol
    assert dv.missing_sides(dv.EngineView(), dv.EngineView()) == nothing  # nothing runs


def test_a_legacy_state_no_engine_runs_on_is_the_side_missing():
    """A stopped or killed legacy engine leaves its rows: compared as they stand they
    would look like a live engine that never moves (or like no divergence at all)."""
    fsm = view(coin(), coin(market=ETH_USDT))
    stale = view(coin()).model_copy(update={"down": True})
    sides = dv.missing_sides(fsm, stale)
    [d] = sides.divergences
    assert (d.kind, d.symbol, sides.fsm, sides.legacy) == (K.SIDE_MISSING, "legacy", False, True)
    assert d.values == {"legacy": "not running (1 symbol in its state)", "fsm": "2 running"}
    assert "no legacy engine runs on its state" in d.detail
    assert dv.missing_sides(dv.EngineView(), stale) == dv.MissingSides()  # nothing to compare


def test_a_side_missing_is_one_episode_while_it_lasts():
    tol = dv.Tolerances()
    tracker, reported = dv.DivergenceTracker(), []
    for i in range(6):  # the same divergence whatever the count of unanswered symbols
        tracker, new = dv.track(
            tracker,
            dv.missing_sides(_down(*["BTC/USDT", "ETH/USDT"][: 1 + i % 2]), None).divergences,
            confirm_checks=tol.confirm_checks,
            clear_checks=tol.clear_checks,
        )
        reported += new
    assert [d.symbol for d in reported] == ["fsm"]


def _checks(fsm_views, legacy_views=None, watchlist=()):
    """What the activity does with each check's views: a missing side's own divergences
    held (counted, not reported), the rest reported by ``track``; the symbols reported."""
    tol, tracker, out = dv.Tolerances(), dv.DivergenceTracker(), []
    for i, fsm in enumerate(fsm_views):
        legacy = legacy_views[i] if legacy_views else None
        sides = dv.missing_sides(fsm, legacy)
        running = dv.compare_running(fsm, watchlist=watchlist)
        engines = dv.compare_engines(fsm, legacy) if legacy is not None else []
        tracker, new = dv.track(
            tracker,
            [
                *sides.divergences,
                *([] if sides.fsm else running),
                *([] if sides.fsm or sides.legacy else engines),
            ],
            held=[*(running if sides.fsm else []), *(engines if sides.fsm or sides.legacy else [])],
            confirm_checks=tol.confirm_checks,
            clear_checks=tol.clear_checks,
        )
        out.append([f"{d.kind.value}:{d.symbol}" for d in new])
    return out


def test_a_symbol_unreadable_on_every_check_is_reported_though_its_side_blinks_missing():
    """A degraded worker answers BTC on every other check and never ETH: the checks
    alternate between side_missing and ETH's fsm_state_unavailable, neither seen twice in a
    row; ETH's count goes on while its side is missing, so it is reported at check 2."""
    half = _down("ETH/USDT").model_copy(update={"symbols": view(coin()).symbols})
    reported = _checks([_down("BTC/USDT", "ETH/USDT"), half] * 3)
    assert reported == [[], ["fsm_state_unavailable:ETH/USDT"], [], [], [], []]


def test_a_side_missing_longer_than_clear_checks_keeps_what_stood_before():
    """What stands before an outage of either side longer than ``clear_checks`` and is
    still computed meanwhile (a watchlist symbol not running, a symbol only legacy runs, a
    trade only one engine made) is reported once: not cleared by the outage, re-sent after."""
    fsm_up, fsm_down = view(coin()), _down("BTC/USDT")
    legacy = view(coin(), coin(market=ETH_USDT))
    wl = ("BTC/USDT", "XRP/USDT")
    reported = _checks([fsm_up] * 2 + [fsm_down] * 5 + [fsm_up] * 3, [legacy] * 10, wl)
    stood = ["symbol_missing:ETH/USDT", "symbol_not_running:XRP/USDT"]
    assert sorted(sum(reported, [])) == ["side_missing:fsm", *stood]
    traded = fsm_up.model_copy(update={"trades": [trade()]})
    reported = _checks(
        [traded] * 10, [view(coin())] * 2 + [dv.EngineView()] * 5 + [view(coin())] * 3
    )
    assert sorted(sum(reported, [])) == [
        "realized_pnl:BTC/USDT",
        "side_missing:legacy",
        "trades:BTC/USDT",
    ]
