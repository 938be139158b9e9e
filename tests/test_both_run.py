"""``run_both``'s own orchestration, its two sides stubbed (their real runs are the e2e
tests in tests/e2e/test_both*.py): a shadow's run that ends cancelled by itself is its own
failure, the primary trades on; the process ends only once both sides have finished, the
shared state store, hub and exchange closed after them; a second process on the same
DATA_DIR is refused at start whichever engine is the shadow."""

from __future__ import annotations

import asyncio
import types
from pathlib import Path
from typing import Any, cast

import pytest
from temporalio.client import Client

from trader.config import Settings, load_settings
from trader.legacy.store import StateLocked, StateStore, state_path
from trader.runtime import both, hybrid


def both_settings(tmp_path: Path, primary: str, **more: Any) -> Settings:
    """FSM_MODE=both on paper, BTC/USDT, as ``starter.py`` gives them to ``run_both``."""
    return hybrid.fsm_settings(
        load_settings(
            data_dir=tmp_path,
            fsm_mode="both",
            hybrid_primary=primary,
            exchange="paper",
            watchlist=["BTC/USDT"],
            **more,
        )
    )


def _client() -> Client:
    return cast(Client, types.SimpleNamespace(identity="1@test"))  # the stubs never call it


async def _wait_for(condition: Any, what: str) -> None:
    async with asyncio.timeout(60):  # generous: only a hang fails this
        while not condition():
            await asyncio.sleep(0.01)


async def test_an_fsm_shadow_that_ends_cancelled_never_stops_the_primary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """temporalio cancels the task running a worker on a fatal worker error."""
    events: list[str] = []
    shadow_runs: list[int] = []

    async def fsm_shadow(settings: Settings, client: Client, stop: asyncio.Event, *_: Any) -> None:
        shadow_runs.append(1)
        if len(shadow_runs) == 1:
            current = asyncio.current_task()
            assert current is not None
            current.cancel()
            await asyncio.sleep(30)
        await stop.wait()

    async def legacy_primary(
        settings: Settings, stop: asyncio.Event, real: Any, hub: Any, metrics: Any, stores: Any
    ) -> None:
        store, _ = stores.take()
        await stop.wait()
        await asyncio.sleep(0.05)  # its last steps: cancel open orders, the final save
        store.load()  # the store is still open
        events.append("primary saved")

    monkeypatch.setattr(both, "_run_fsm_side", fsm_shadow)
    monkeypatch.setattr(both, "_run_legacy_side", legacy_primary)
    monkeypatch.setenv("SHADOW_RESTART_MAX_SECONDS", "0.05")
    stop = asyncio.Event()
    task = asyncio.create_task(both.run_both(both_settings(tmp_path, "legacy"), _client(), stop))
    await _wait_for(lambda: len(shadow_runs) >= 2 or task.done(), "the shadow restarted")
    assert not task.done() and not stop.is_set()  # the primary trades on
    stop.set()
    await task
    assert events == ["primary saved"]


async def test_the_process_ends_once_both_sides_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The primary fails: the process fails with its error, but only after the shadow's
    shutdown (which still needs the shared store and exchange) has run."""
    events: list[str] = []

    class PrimaryBroke(RuntimeError):
        pass

    async def fsm_primary(settings: Settings, client: Client, stop: asyncio.Event, *_: Any) -> None:
        await _wait_for(lambda: "shadow up" in events, "the shadow up")
        raise PrimaryBroke("the primary's worker failed")

    async def legacy_shadow(
        settings: Settings, stop: asyncio.Event, real: Any, hub: Any, metrics: Any, stores: Any
    ) -> None:
        store, own = stores.take()
        events.append("shadow up")
        try:
            await stop.wait()
            await asyncio.sleep(0.05)
            store.load()
            await real.fetch_balance()  # the shared exchange is still open
            events.append("shadow finished")
        finally:
            if own:
                store.close()

    monkeypatch.setattr(both, "_run_fsm_side", fsm_primary)
    monkeypatch.setattr(both, "_run_legacy_side", legacy_shadow)
    with pytest.raises(PrimaryBroke):
        await both.run_both(both_settings(tmp_path, "fsm"), _client(), asyncio.Event())
    assert events == ["shadow up", "shadow finished"]


@pytest.mark.parametrize("primary", ["fsm", "legacy"])
async def test_a_second_process_on_the_data_dir_is_refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, primary: str
) -> None:
    ran: list[str] = []

    async def side(*_: Any) -> None:
        ran.append("side")

    monkeypatch.setattr(both, "_run_fsm_side", side)
    monkeypatch.setattr(both, "_run_legacy_side", side)
    tmp_path.mkdir(exist_ok=True)
    holder = StateStore(state_path(tmp_path))  # the first process
    try:
        with pytest.raises(StateLocked):
            await both.run_both(both_settings(tmp_path, primary), _client(), asyncio.Event())
    finally:
        holder.close()
    assert ran == []
