"""The load bench's small version (issue 13): real dev server, real worker processes, the
paper exchange on a generated market. Asserts behaviour, never speed: every symbol gets
past WARMUP and watches, none ends in ERROR, the histories hold events, every order comes
after the trigger that caused it, and the JSON carries every figure the table shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import load

pytestmark = [pytest.mark.e2e, pytest.mark.bench]

_FIGURES = ("checkpoint_actual_s", "slot_grant_s", "entry_trigger_to_order_s", "place_order_s")


async def test_trader_design_at_100_symbols(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    args = load.parse_args(
        ["--symbols", "100", "--tuning", "busy", "--seconds", "40", "--json", str(out)]
    )
    rows = await load.main(args)
    assert json.loads(out.read_text()) == json.loads(json.dumps(rows))
    (r,) = rows
    assert (r["design"], r["symbols"], r["tuning"], r["workers"]) == ("trader", 100, "busy", 1)
    assert r["workers_alive_at_end"]
    assert r["runs"] >= 100 and r["symbols_watching"] > 0
    assert r["symbols_past_warmup"] == 100 and sum(r["phases"].values()) == 100
    assert r["symbols_in_error"] == 0 and r["symbols_stuck"] == 0
    assert r["failures"].get("workflow_task_failed", 0) == 0
    assert r["events_startup"] > 0 and r["events_idle"] > 0 and r["portfolio_events"] > 0
    assert r["events_total"] == r["events_startup"] + r["events_idle"] + r["events_held"]
    assert r["idle_symbol_hours"] > 0 and r["events_per_idle_symbol_hour"] > 0
    # The demo tuning fires drops within seconds (5 minutes of backfill): watches return.
    assert r["checkpoint_actual_s"]["n"] + r["slot_grant_s"]["n"] > 0
    for name in _FIGURES:
        fig = r[name]
        assert fig["n"] == 0 or 0 <= fig["p50"] <= fig["p99"] <= fig["max"], name
    # A watch returns at its first tick after the planned checkpoint, never before it.
    assert r["checkpoint_planned_s"] == 30
    assert r["checkpoint_actual_s"]["n"] == 0 or r["checkpoint_actual_s"]["p50"] >= 30
    # Orders follow the price that triggered them (the trigger's ticker is older).
    assert r["entry_trigger_to_order_s"]["n"] == 0 or r["entry_trigger_to_order_s"]["p50"] >= 0
    for who in ("worker", "server"):
        assert r[f"{who}_cpu_pct"] > 0 and r[f"{who}_rss_mb"] > 10
    assert load.table(rows).count("\n") == 2  # head, rule, one row


async def test_naive_design_ticks_every_symbol(tmp_path: Path) -> None:
    rows = await load.main(
        load.parse_args(
            ["--design", "naive", "--symbols", "20", "--tuning", "busy", "--seconds", "12"]
        )
    )
    (r,) = rows
    assert r["design"] == "naive" and r["workers_alive_at_end"]
    assert r["symbols_watching"] == 20 and r["symbols_past_warmup"] == 20
    assert r["symbols_in_error"] is None  # no phase machine: nothing to count
    # One tick per second per symbol: the interval from tick to tick is at least the timer.
    ticks = r["checkpoint_actual_s"]
    assert ticks["n"] > 20 and ticks["p50"] >= r["checkpoint_planned_s"] == 1
    assert r["events_idle"] > r["symbols_watching"] * 10
