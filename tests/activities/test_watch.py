"""The watch activities, attempt by attempt (ActivityEnvironment), over the real paper
exchange and market hub: a retried watch resumes from its last heartbeat (the rule state
as one model; the positional values of the release before it too), so a worker dying
mid-watch loses neither the anchor nor an armed trailing stop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.market import MarketActivities
from tests.workflows.harness import MARKETS, TEST_PARAMS
from trader import contracts as c
from trader.core.params import TraderParams
from trader.core.rules import EntryWatchState, ExitReason, ExitRulesState
from trader.exchange.feed import StaticFeed
from trader.exchange.paper import PaperExchange
from trader.hub import MarketHub
from trader.observe.metrics import TraderMetrics

PARAMS = TEST_PARAMS.model_copy(update={"watch_checkpoint_seconds": 1})
SYMBOL = "BTC/USDT"


class Watch:
    """Each attempt runs on a worker of its own (a new market hub: nothing cached)."""

    def __init__(self, feed: StaticFeed, exchange: PaperExchange) -> None:
        self.feed, self.exchange = feed, exchange
        self.details: list[Any] = []

    @contextlib.asynccontextmanager
    async def worker(
        self, price: str, details: list[Any], *, poll_s: float = 0.02
    ) -> AsyncIterator[Any]:
        self.feed.set_price(SYMBOL, D(price))
        hub = MarketHub(self.exchange, poll_interval_s=poll_s)
        await hub.start()
        env = ActivityEnvironment()
        env.info = replace(env.info, heartbeat_details=list(details))
        env.on_heartbeat = lambda *d: setattr(self, "details", list(d))
        try:
            yield env, MarketActivities(hub, self.exchange)
        finally:
            await hub.stop()

    async def dies_after_heartbeat(self, kind: str, inp: Any, price: str) -> list[Any]:
        """An attempt that sees ``price``, heartbeats, then loses its worker."""
        self.details = []
        async with self.worker(price, []) as (env, acts):
            task = asyncio.ensure_future(env.run(getattr(acts, kind), inp))
            for _ in range(500):
                if self.details:
                    break
                await asyncio.sleep(0.01)
            env.cancel()
            with contextlib.suppress(BaseException):
                await task
        assert self.details, "the watch never heartbeated"
        return self.details

    async def attempt(self, kind: str, inp: Any, price: str, details: list[Any]) -> Any:
        async with self.worker(price, details) as (env, acts):
            return await env.run(getattr(acts, kind), inp)


@pytest.fixture
def watch(tmp_path: Path) -> Watch:
    feed = StaticFeed(dict(MARKETS))
    feed.set_price(SYMBOL, D("100"))
    return Watch(feed, PaperExchange(feed, db_path=tmp_path / "paper.sqlite", quote_balances={}))


EXIT = c.WatchExitInput(
    symbol=SYMBOL,
    params=PARAMS,
    entry_price=D("100"),
    entry_ts=1e12,  # max hold far away
    state=ExitRulesState.opened(D("100")),
)


async def test_an_exit_watch_resumes_its_armed_trailing_stop_from_the_heartbeat(watch):
    details = await watch.dies_after_heartbeat("watch_exit", EXIT, "102")
    assert ExitRulesState.model_validate(details[-1]).trailing.trigger == D("101.49")
    # The previous release's positional values come first (a retry on its worker).
    assert (Decimal(details[0]), Decimal(details[1])) == (D("102"), D("101.49"))
    # 100.50 is below the stop armed at 102 but never arms one from the entry price alone.
    fresh = await watch.attempt("watch_exit", EXIT, "100.50", [])
    assert not fresh.fired
    resumed = await watch.attempt("watch_exit", EXIT, "100.50", details)
    assert resumed.fired and resumed.reason is ExitReason.TRAILING_STOP
    assert resumed.state.trailing.peak == D("102")


async def test_an_exit_watch_reads_the_positional_heartbeat_of_the_previous_release(watch):
    resumed = await watch.attempt("watch_exit", EXIT, "100.50", ["102", "101.49"])
    assert resumed.fired and resumed.reason is ExitReason.TRAILING_STOP
    assert resumed.state.trailing == ExitRulesState.opened(D("102")).trailing.model_copy(
        update={"trigger": D("101.49")}
    )


ENTRY = c.WatchEntryInput(symbol=SYMBOL, params=PARAMS, state=EntryWatchState())


async def test_an_entry_watch_resumes_its_anchor_from_the_heartbeat(watch):
    details = await watch.dies_after_heartbeat("watch_entry", ENTRY, "100")
    assert EntryWatchState.model_validate(details[-1]).anchor == D("100")
    assert Decimal(details[0]) == D("100")  # read as the previous release reads it
    assert [(int(t), Decimal(v)) for t, v in details[1]] == [(t, D("100")) for t, _ in details[1]]
    # A 2.1 % drop from the anchor the dead attempt saw; a fresh watch has no anchor yet.
    fresh = await watch.attempt("watch_entry", ENTRY, "97.90", [])
    assert not fresh.fired and fresh.state.anchor == D("97.90")
    resumed = await watch.attempt("watch_entry", ENTRY, "97.90", details)
    assert resumed.fired and resumed.state.anchor == D("100")


async def test_an_entry_watch_reads_the_positional_heartbeat_of_the_previous_release(watch):
    old = ["100", [[1, "100"]]]
    resumed = await watch.attempt("watch_entry", ENTRY, "97.90", old)
    assert resumed.fired and resumed.state.anchor == D("100")


async def test_an_old_positional_heartbeat_keeps_the_inputs_recheck(watch):
    """A drop held back by a guard stays held back on a retry from the previous release's
    heartbeat (anchor, window): the input's recheck is kept, not reset."""
    blocking = PARAMS.model_copy(update={"min_quote_volume": D("1e15")})  # guards fail
    inp = c.WatchEntryInput.model_validate(  # as a workflow of the previous release sent it
        {
            "symbol": SYMBOL,
            "params": blocking.model_dump(mode="json"),
            "anchor": "100",
            "window": [[1, "100"]],
            "recheck": "guards",
        }
    )
    assert not (await watch.attempt("watch_entry", inp, "97.90", [])).fired
    resumed = await watch.attempt("watch_entry", inp, "97.90", ["100", [[1, "100"]]])
    assert not resumed.fired and resumed.state.recheck == "guards"


async def test_a_held_watch_heartbeats_what_it_sees_and_keeps_watching(watch):
    """The live price and trailing level are in every exit heartbeat (what ``describe()``,
    the Web UI and ``starter.py status`` show), and new highs that move the trailing stop
    are no reason to return: at the default checkpoint the watch stays out, costing no
    history, until a rule fires."""
    inp = EXIT.model_copy(update={"params": TEST_PARAMS.model_copy(update=DEFAULT_CHECKPOINT)})
    watch.details = []
    async with watch.worker("100", []) as (env, acts):
        task = asyncio.ensure_future(env.run(acts.watch_exit, inp))
        for price, trailing in (("101.5", "100.9925"), ("102", "101.49"), ("102.5", "101.9875")):
            watch.feed.set_price(SYMBOL, D(price))
            await _until(lambda p=price: _saw(watch.details, D(p)))
            live = _live(watch.details)
            assert (live.peak, live.trailing) == (D(price), D(trailing))
            assert (
                ExitRulesState.model_validate(watch.details[-1]).trailing.trigger == live.trailing
            )
        assert not task.done()  # new highs, a stop armed and raised: no return
        watch.feed.set_price(SYMBOL, D("101.90"))  # through the raised stop: a decision
        res = await task
    assert res.fired and res.reason is ExitReason.TRAILING_STOP


async def test_an_idle_watch_heartbeats_its_price_and_anchor(watch):
    details = await watch.dies_after_heartbeat("watch_entry", ENTRY, "100")
    live = _live(details)
    assert (live.price, live.anchor) == (D("100"), D("100"))
    assert live.trailing == 0


DEFAULT_CHECKPOINT = {
    "watch_checkpoint_seconds": TraderParams.model_fields["watch_checkpoint_seconds"].default
}


def _live(details: list[Any]) -> c.WatchLive:
    assert len(details) == 4, details
    return c.WatchLive.model_validate(details[c.WATCH_LIVE_DETAIL])


def _saw(details: list[Any], price: Decimal) -> bool:
    return len(details) == 4 and _live(details).price == price


async def _until(ok: Any) -> None:
    for _ in range(1000):
        if ok():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the watch never heartbeated that")


async def _cancelled_before_a_tick(watch: Watch, kind: str, inp: Any, details: list[Any]) -> Any:
    """A retry resumed from ``details`` whose workflow cancels it before its first tick."""
    async with watch.worker("101.80", details, poll_s=3600) as (env, acts):  # no tick comes
        task = asyncio.ensure_future(env.run(getattr(acts, kind), inp))
        await _until(lambda: SYMBOL in acts.hub._subscribers)  # started, waiting for a tick
        env.cancel()
        res = await task
    assert res.ticker is None and res.ticks == 0  # really before a tick
    return res


async def test_a_retry_cancelled_before_its_first_tick_hands_back_the_resumed_state(watch):
    """A watch retried from its heartbeat (an armed trailing stop, an anchor) and cancelled
    by a reconcile or a pause before it saw a price hands back what it resumed from: that
    is newer than the workflow's checkpoint, which would otherwise be kept."""
    armed = ExitRulesState.model_validate({"trailing": {"peak": "102", "trigger": "101.49"}})
    exit_beat = ["102", "101.49", {}, armed.model_dump(mode="json")]
    res = await _cancelled_before_a_tick(watch, "watch_exit", EXIT, exit_beat)
    assert not res.fired and res.state == armed
    anchored = EntryWatchState(anchor=D("105"))
    entry_beat = ["105", [], {}, anchored.model_dump(mode="json")]
    res = await _cancelled_before_a_tick(watch, "watch_entry", ENTRY, entry_beat)
    assert not res.fired and res.state.anchor == D("105")


async def test_an_exit_watch_heartbeats_about_once_a_second_on_a_flat_price(watch):
    """Encoding a heartbeat costs the hot path: a watch ticking every 20 ms on an unmoved
    price heartbeats at the start and then at most once per LIVE_HEARTBEAT (its 1 s
    checkpoint here), not per tick; a moved trailing stop beats at once (the test above)."""
    beats: list[Any] = []
    async with watch.worker("100.50", []) as (env, acts):
        env.on_heartbeat = lambda *d: beats.append(d)
        res = await env.run(acts.watch_exit, EXIT)
    assert not res.fired and res.ticks >= 10  # many ticks...
    assert 1 <= len(beats) <= 2, len(beats)  # ...few heartbeats


async def test_a_watch_marks_every_tick_it_evaluates(watch):
    """``trader_watch_tick_timestamp_seconds`` moves with the ticks, not with the rare
    checkpoint: the silence alert (deploy/alerts.yml) pages within minutes, not 27."""
    metrics = TraderMetrics("w")
    async with watch.worker("100.50", []) as (env, acts):
        acts.metrics = metrics
        started = time.time()
        beats: list[float] = []
        env.on_heartbeat = lambda *d: beats.append(_tick_ts(metrics))
        await env.run(acts.watch_exit, EXIT)
    assert beats and all(ts >= started for ts in beats)  # set before the watch returned
    assert _tick_ts(metrics) > beats[0]  # and moved on with later ticks


def _tick_ts(metrics: TraderMetrics) -> float:
    labels = {"symbol": SYMBOL, "kind": "exit", "worker": "w"}
    value = metrics.registry.get_sample_value("trader_watch_tick_timestamp_seconds", labels)
    return value if value is not None else float("-inf")
