"""FSM_MODE=both: the shadow's failure never stops the primary. ``starter.py`` (a real
process) on the paper exchange and the dev server, the shadow's simulated account a file
that is not a database: the primary trades on; the shadow's failure is logged at ERROR with
its cause once per failure and counted (``trader_shadow_failures_total``, ``trader_shadow_up``
0); once the file is put right the shadow restarts on its own and trades. Once with each
engine as the primary (the legacy shadow's task and the FSM shadow's worker are contained
by different code)."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.helpers import free_port, run, terminate_queue, wait_state, wait_until
from tests.e2e.test_both import Both, metered, orders_in, scrape
from trader.contracts import TradeRecord
from trader.core import ids
from trader.core.phases import Phase
from trader.ledger import read_trades

pytestmark = pytest.mark.e2e

# Symbols of their own: the dev server outlives a test, and workflow ids are per symbol.
SYMBOLS = {"fsm": "ADA/USDT", "legacy": "DOGE/USDT", "validator": "XRP/USDT"}
NOT_A_DATABASE = b"this is not an SQLite database: the shadow's account is broken\n" * 64


def shadow_health(text: str, engine: str) -> tuple[float, float]:
    """(``trader_shadow_up``, ``trader_shadow_failures_total``) of ``engine``."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in ("trader_shadow_up", "trader_shadow_failures_total"):
                assert s.labels["engine"] == engine, s
                found[s.name] = s.value
    return found["trader_shadow_up"], found["trader_shadow_failures_total"]


@pytest.mark.parametrize("primary", ["fsm", "legacy"])
async def test_a_failing_shadow_never_stops_the_primary(
    dev_env, tmp_path: Path, primary: str
) -> None:
    client, symbol, port = dev_env.client, SYMBOLS[primary], free_port()
    # A short backoff: the shadow is retried every few seconds while the primary's first
    # trade comes, so it is back soon after its account is put right (not up to 5 min).
    both = metered(tmp_path, client, symbol, primary, port, env={"SHADOW_RESTART_MAX_SECONDS": "3"})
    shadow = both.shadow
    account = both.data / f"shadow-{shadow}-paper.sqlite"
    both.data.mkdir(parents=True)
    account.write_bytes(NOT_A_DATABASE)

    def primary_trades() -> list[TradeRecord] | None:
        assert both.procs[-1].poll() is None, f"starter.py exited: {both.tail()}"
        ledger = both.data / "ledger.sqlite"
        trades = read_trades(ledger) if ledger.exists() else []
        return [t for t in trades if t.engine == primary] or None

    try:
        both.start()
        wait_until(primary_trades, timeout=240, what=f"a trade of the primary ({both.tail()})")
        up, failures = shadow_health(scrape(port), shadow)
        assert up == 0 and failures >= 1
        # Put right, the shadow comes back on its own (bounded backoff) and trades.
        account.unlink()
        wait_until(
            lambda: shadow_health(scrape(port), shadow)[0] == 1,
            timeout=240,  # generous: the backoff is at most 3 s here, and up counts after 10 s
            what=f"the shadow up again ({both.tail()})",
        )
        trades = both.wait_trades(1, each=True)
        up, failures = shadow_health(scrape(port), shadow)
        both.kill()
    finally:
        both.kill()
        await both.terminate(client)
    assert up == 1
    log = both.log.read_text()
    failed = [line for line in log.splitlines() if f"the {shadow} SHADOW failed" in line]
    assert len(failed) == failures, failed  # one ERROR line per failure, none more
    assert all(" ERROR " in line and "DatabaseError" in line for line in failed), failed
    assert "file is not a database" in failed[0]
    assert any(t.engine == shadow and t.simulated for t in trades)


def validator_checks(text: str) -> float:
    """``trader_validator_checks_total{outcome="ok"}`` (summed over workers)."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "trader_validator_checks_total" and s.labels["outcome"] == "ok"
    )


async def test_the_validator_checks_a_legacy_primary_while_the_fsm_shadow_is_down(
    dev_env, tmp_path: Path
) -> None:
    """HYBRID_PRIMARY=legacy, the FSM shadow's account broken (it never starts): the
    validator runs on a queue of its own, served by ``run_both`` outside the supervised
    shadow, and its checks of the real money go on (on the shadow's queue, nothing checked
    them while the shadow was down)."""
    client, port = dev_env.client, free_port()
    both = metered(
        tmp_path,
        client,
        SYMBOLS["validator"],
        "legacy",
        port,
        env={"SHADOW_RESTART_MAX_SECONDS": "3"},
        hybrid_validation_interval_s="1",
    )
    both.data.mkdir(parents=True)
    (both.data / "shadow-fsm-paper.sqlite").write_bytes(NOT_A_DATABASE)

    def checked_while_down() -> tuple[float, float, float] | None:
        assert both.procs[-1].poll() is None, f"starter.py exited: {both.tail()}"
        try:
            text = scrape(port)
        except (urllib.error.URLError, ConnectionError):  # not serving yet
            return None
        up, failures = shadow_health(text, "fsm")
        checks = validator_checks(text)
        return (up, failures, checks) if failures >= 2 and checks >= 2 else None

    wf_id = ids.validator_id_for("paper", both.fsm_queue)
    try:
        both.start()
        up, failures, checks = wait_until(
            checked_while_down,
            timeout=240,
            what=f"validator checks with the shadow failing ({both.tail()})",
        )
        desc = await client.get_workflow_handle(wf_id).describe()
        both.kill()
    finally:
        both.kill()
        await both.terminate(client)
    assert up == 0  # the shadow never ran
    assert desc.task_queue == both.fsm_queue + "-validator"


@pytest.mark.parametrize("shadow", ["fsm", "legacy"])
async def test_paper_refuses_to_swap_roles_over_a_shadow_position(
    dev_env, tmp_path: Path, shadow: str
) -> None:
    """On paper both accounts are ``simulated``, so that flag cannot tell the shadow's
    position from the primary's: the FSM side tells by its task queue (the shadow's is its
    own), the legacy side by the role its store recorded. The shadow holds; a start with
    ``HYBRID_PRIMARY`` swapped exits 2 naming it, and sends no order to either account."""
    client = dev_env.client
    symbol = {"fsm": "LTC/USDT", "legacy": "BNB/USDT"}[shadow]
    primary = "legacy" if shadow == "fsm" else "fsm"
    # Exits far away: once bought, each side holds until the test is done.
    both = Both(
        tmp_path,
        client,
        symbol,
        primary=primary,
        take_profit_pct='"50"',
        stop_loss_pct='"50"',
        max_position_hold_minutes='"0"',
    )
    wf_id = ids.workflow_id_for("paper", symbol)
    holding = lambda s: s.phase is Phase.POSITION  # noqa: E731
    try:
        both.start()
        if shadow == "fsm":
            await wait_state(client, wf_id, holding, timeout=180, what=f"FSM buy ({both.tail()})")
        else:
            both.wait_legacy(holding, "legacy buy")
        both.kill()
        accounts = [both.data / "paper.sqlite", both.data / f"shadow-{shadow}-paper.sqlite"]
        before = [orders_in(db) for db in accounts]
        swapped = run(
            "starter.py",
            "--config",
            str(both.cfg),
            env={**both.env, "HYBRID_PRIMARY": shadow},
            timeout=120,
        )
        after = [orders_in(db) for db in accounts]
    finally:
        both.kill()
        await both.terminate(client)
        await terminate_queue(client, both.queue + "-shadow" if shadow == "legacy" else both.queue)
    err = swapped.stderr
    assert swapped.returncode == 2, swapped.stdout[-1500:] + err[-1500:]
    assert "Traceback" not in err
    named = wf_id if shadow == "fsm" else f"legacy:paper:{symbol}"
    assert named in err and "shadow" in err, err
    assert after == before  # refused before either side traded
