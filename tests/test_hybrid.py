"""``trader.runtime.hybrid``: who is primary and shadow in each mode, where the shadow's
account lives, each engine's listener taking its own events, and one metrics endpoint
serving both engines with each family once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from tests.observe.sample import event
from trader.config import load_settings
from trader.exchange.dry_run import DryRunExchange
from trader.observe.events import PhaseEvent
from trader.observe.metrics import TraderMetrics
from trader.runtime import hybrid
from trader.runtime.exchange import build_exchange


@pytest.mark.parametrize(
    ("overrides", "primary", "shadow"),
    [
        ({"fsm_mode": "fsm"}, "fsm", None),
        ({"fsm_mode": "legacy"}, "legacy", None),
        ({"fsm_enabled": False, "fsm_mode": "both"}, "legacy", None),
        ({"fsm_mode": "both"}, "fsm", "legacy"),
        ({"fsm_mode": "both", "hybrid_primary": "legacy"}, "legacy", "fsm"),
    ],
)
def test_roles(tmp_path: Path, overrides: dict[str, Any], primary: str, shadow: str | None):
    settings = load_settings(data_dir=tmp_path, **overrides)
    roles = hybrid.roles(settings)
    assert (roles.primary, roles.shadow) == (primary, shadow)
    assert roles.role(primary) == "primary"
    for engine in ("fsm", "legacy"):
        assert hybrid.is_shadow(settings, engine) is (engine == shadow)


async def test_only_the_shadow_gets_a_simulated_account(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, fsm_mode="both", hybrid_primary="legacy")
    real = build_exchange(settings)
    assert hybrid.side_exchange(settings, "legacy", real) is real
    shadow = hybrid.side_exchange(settings, "fsm", real)
    try:
        assert isinstance(shadow, DryRunExchange) and shadow.live is real
        assert hybrid.shadow_db_path(settings, "fsm") == tmp_path / "shadow-fsm-paper.sqlite"
        assert (tmp_path / "shadow-fsm-paper.sqlite").exists()
        assert not (tmp_path / "dryrun-paper.sqlite").exists()
    finally:
        await hybrid.close_side(shadow, real)
        await real.close()


def _of(engine: str) -> PhaseEvent:
    return event(seq=1).model_copy(update={"engine": engine})


def test_each_engine_listener_takes_its_own_events() -> None:
    seen: list[str] = []
    fsm_only = hybrid.EngineOnly("fsm", lambda e: seen.append(f"fsm<-{e.engine}"))
    legacy_only = hybrid.EngineOnly("legacy", lambda e: seen.append(f"legacy<-{e.engine}"))
    for e in (_of("fsm"), _of("legacy")):
        fsm_only(e)
        legacy_only(e)
    assert seen == ["fsm<-fsm", "legacy<-legacy"]


def test_one_endpoint_serves_both_engines_each_family_once() -> None:
    fsm, legacy = TraderMetrics("1@h", engine="fsm"), TraderMetrics("1@h", engine="legacy")
    fsm.serve_also(legacy)
    fsm(_of("fsm"))
    legacy(_of("legacy"))
    legacy(_of("legacy").model_copy(update={"seq": 2}))
    text = generate_latest(fsm.served).decode()
    assert text.count("# HELP trader_transitions_total ") == 1
    samples = [line for line in text.splitlines() if line.startswith("trader_transitions_total")]
    assert len(samples) == 2 and all("engine=" in s for s in samples)
    assert any('engine="fsm"' in s and s.endswith(" 1.0") for s in samples)
    assert any('engine="legacy"' in s and s.endswith(" 2.0") for s in samples)
    with pytest.raises(ValueError):
        TraderMetrics("1@h").serve_also(legacy)  # an unlabelled registry cannot share


async def test_the_validator_reconciles_the_primary_on_its_real_account(tmp_path: Path) -> None:
    from trader.runtime.validator import validator_setup

    settings = load_settings(data_dir=tmp_path, fsm_mode="both", hybrid_primary="legacy")
    assert validator_setup(settings).primary == "legacy"
    real = build_exchange(settings)
    shadow = hybrid.side_exchange(settings, "fsm", real)  # the worker's exchange
    try:
        # The worker's own exchange is the shadow's simulated account; the validator must
        # check the legacy primary against the real one.
        assert hybrid.primary_exchange(settings, shadow) is real
        fsm_primary = load_settings(data_dir=tmp_path, fsm_mode="both")
        assert validator_setup(fsm_primary).primary == "fsm"
        assert hybrid.primary_exchange(fsm_primary, real) is real
    finally:
        await hybrid.close_side(shadow, real)
        await real.close()
