"""The workflow's error branches, each driven by a stand-in registered under a real
activity's name (the other activities are the real ones over the paper exchange): a buy
refused as invalid, a buy whose outcome stays unknown (and ERROR's reconciliation, failing
or not), a sell refused until the rejections run out, and a ledger write retried."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from temporalio import activity

from activities.errors import to_application_error
from tests.event_history import scheduled_inputs
from tests.workflows.harness import Bench, RealActivities, StandIns, TraderHandle, bench, path_of
from trader import contracts as c
from trader.core.errors import InvalidOrder, OrderStatusUnknown, RetryableExchangeError
from trader.core.market import Order, OrderSide
from trader.core.phases import Phase

ENTRY = ["warmup", "idle", "entry_eval", "place_buy"]
FAST: dict[str, Any] = {"fsm_backoff_base_seconds": 1}  # ERROR backs off 1 s, 2 s, ... in real time


@dataclass
class Failing:
    """Raises ``error()`` on the first ``times`` calls (every call when None); records the
    attempt number of each call."""

    error: Callable[[], BaseException]
    times: int | None = None
    attempts: list[int] = field(default_factory=list)

    def __call__(self) -> None:
        self.attempts.append(activity.info().attempt)
        if self.times is None or len(self.attempts) <= self.times:
            raise self.error()


def place_order(fail: Failing, side: OrderSide) -> StandIns:
    """place_order failing for orders on ``side``; the real one for the others."""

    def make(real: RealActivities) -> list[Callable[..., Any]]:
        @activity.defn(name=c.PLACE_ORDER)
        async def stand_in(inp: c.PlaceOrderInput) -> Order:
            if inp.side is side:
                fail()
            return cast(Order, await real[c.PLACE_ORDER](inp))

        return [stand_in]

    return make


def reconcile(fail: Failing) -> StandIns:
    def make(real: RealActivities) -> list[Callable[..., Any]]:
        @activity.defn(name=c.RECONCILE)
        async def stand_in(inp: c.ReconcileInput) -> c.ReconcileResult:
            fail()
            return cast(c.ReconcileResult, await real[c.RECONCILE](inp))

        return [stand_in]

    return make


def record_trade(fail: Failing) -> StandIns:
    def make(real: RealActivities) -> list[Callable[..., Any]]:
        @activity.defn(name=c.RECORD_TRADE)
        async def stand_in(trade: c.TradeRecord) -> c.RecordResult:
            fail()
            return cast(c.RecordResult, await real[c.RECORD_TRADE](trade))

        return [stand_in]

    return make


def both(*stand_ins: StandIns) -> StandIns:
    return lambda real: [fn for make in stand_ins for fn in make(real)]


async def reach(b: Bench, h: TraderHandle, path: list[str], *, timeout: float = 30) -> list[str]:
    """Wait until the phases visited start with ``path``; the whole path so far."""
    s = await b.wait_for(
        h,
        lambda s: bool(s.phase_history) and path_of(s)[: len(path)] == path,
        timeout=timeout,
        what=f"path {path}",
    )
    return path_of(s)


def unknown() -> BaseException:
    return to_application_error(OrderStatusUnknown("create timed out"))


async def test_a_buy_refused_as_invalid_goes_idle_after_one_attempt(ts_env, tmp_path):
    fail = Failing(lambda: to_application_error(InvalidOrder("below the minimum")))
    async with bench(ts_env.client, tmp_path, stand_ins=place_order(fail, OrderSide.BUY)) as b:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        await reach(b, h, [*ENTRY, "idle"])
        s = await b.state(h)
        rejected = s.phase_history[-1]
        assert (rejected.trigger.value, "below the minimum" in rejected.note) == (
            "order_rejected",
            True,
        )
        assert fail.attempts == [1]  # non-retryable: no retry, no ERROR
        assert b.exchange.all_orders() == []


@pytest.mark.parametrize("reconcile_fails", [False, True])
async def test_a_buy_of_unknown_outcome_is_reconciled_in_error(ts_env, tmp_path, reconcile_fails):
    buys = Failing(unknown)
    # Every attempt of the first reconciliation fails: ERROR again, backing off longer.
    checks = Failing(
        lambda: to_application_error(RetryableExchangeError("exchange unreachable")),
        times=3 if reconcile_fails else 0,
    )
    stand_ins = both(place_order(buys, OrderSide.BUY), reconcile(checks))
    async with bench(ts_env.client, tmp_path, stand_ins=stand_ins) as b:
        # A window longer than the buy's retries: ERROR's first look finds no order too
        # early to count it as never placed, and looks again once the window has passed.
        h = await b.start(**FAST, order_consistency_window_seconds=6)
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        errors = ["error", "error"] if reconcile_fails else ["error"]
        path = await reach(b, h, [*ENTRY, *errors, "idle"], timeout=40)
        assert buys.attempts == [1, 2, 3]  # FSM_MAX_RETRIES attempts, then ERROR
        s = await b.state(h)
        recovered = s.phase_history[len(ENTRY) + len(errors) - 1]
        assert recovered.trigger.value == "recovered_flat", path
        if reconcile_fails:
            failed = s.phase_history[len(ENTRY)]
            assert failed.note.startswith("reconcile failed") and "unreachable" in failed.note
            assert checks.attempts[:3] == [1, 2, 3]
        else:
            looks = scheduled_inputs(await h.fetch_history(), c.RECONCILE)
            assert len(looks) == 2  # not found, and then not found after the window
        assert b.exchange.all_orders() == [] and s.trade.decision_id is None


async def test_sells_refused_as_invalid_are_retried_then_reconciled(ts_env, tmp_path):
    sells = Failing(lambda: to_application_error(InvalidOrder("lot size")), times=4)
    async with bench(ts_env.client, tmp_path, stand_ins=place_order(sells, OrderSide.SELL)) as b:
        h = await b.start(**FAST)
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.POSITION)
        b.set_price("BTC/USDT", "101.50")  # take profit
        await b.wait_phase(h, Phase.COOLDOWN, timeout=40)
        path = path_of(await b.state(h))
        exit_path = path[path.index("place_sell") : path.index("error") + 2]
        # FSM_MAX_RETRIES rejections go back to EXIT_EVAL; the next one goes to ERROR, which
        # finds the position held and lets the standing exit sell it.
        assert exit_path == ["place_sell", "exit_eval"] * 3 + ["place_sell", "error", "position"]
        assert sells.attempts == [1, 1, 1, 1, 1]  # each refusal one attempt, never retried
        [trade] = await b.ledger.trades()
        assert trade.exit_reason == "take_profit" and trade.sold_amount == trade.bought_amount


async def test_a_failing_ledger_write_is_retried_until_the_trade_is_booked(ts_env, tmp_path):
    writes = Failing(lambda: RuntimeError("ledger locked"), times=2)
    async with bench(ts_env.client, tmp_path, stand_ins=record_trade(writes)) as b:
        h = await b.start()
        await b.wait_phase(h, Phase.IDLE)
        b.set_price("BTC/USDT", "97.90")
        await b.wait_phase(h, Phase.POSITION)
        b.set_price("BTC/USDT", "101.50")
        s = await b.wait_phase(h, Phase.COOLDOWN, timeout=40)
        assert path_of(s)[-2:] == ["post_trade", "cooldown"]
        assert writes.attempts == [1, 2, 3]  # one activity, retried: no ERROR, no lost trade
        assert len(scheduled_inputs(await h.fetch_history(), c.RECORD_TRADE)) == 1
        [trade] = await b.ledger.trades()
        assert trade.exit_reason == "take_profit"
