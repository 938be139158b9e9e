"""FSM_MODE=both on the paper exchange, every part real: ``starter.py`` (its own process)
runs the SymbolTrader worker and the legacy engine on the dev server, the generated market,
real SQLite. The primary's orders go to the paper account, the shadow's to its own
simulated account only; each engine books its own trades (the shadow's simulated, ids of its
own); ``status`` shows both sides, ``pause`` / ``resume`` reach both, and a SIGKILL forgets
nothing of either side. Once with each engine as the primary."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from tests.e2e.helpers import (
    free_port,
    kill,
    run,
    spawn,
    terminate_queue,
    wait_state,
    wait_until,
    write_config,
)
from trader.contracts import TradeRecord
from trader.core import ids
from trader.core.phases import Phase
from trader.core.state import CoinState
from trader.ledger import read_trades
from trader.legacy.store import read_state, state_path
from trader.telegram_sim import FakeBotApi

pytestmark = pytest.mark.e2e


Pred = Callable[[CoinState], bool]


class Both:
    """The ``both``-mode processes on one data dir, and what they left there."""

    def __init__(
        self,
        tmp: Path,
        client: Client,
        symbol: str,
        *,
        primary: str,
        env: dict[str, str] | None = None,
        **settings: str,
    ) -> None:
        """A fast config (``write_config``, ``settings`` override it) on a queue of its own
        on ``client``'s server, ``primary`` sending the real orders."""
        self.symbol, self.primary = symbol, primary
        self.shadow = "legacy" if primary == "fsm" else "fsm"
        self.queue = f"e2e-both-{uuid.uuid4().hex[:6]}"
        self.data, self.log = tmp / "data", tmp / "starter.log"
        self.cfg = write_config(
            tmp / "cfg.toml",
            address=client.service_client.config.target_host,
            data_dir=self.data,
            queue=self.queue,
            watchlist=(symbol,),
            **settings,
        )
        self.env = {**(env or {}), "FSM_MODE": "both", "HYBRID_PRIMARY": primary}
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def fsm_queue(self) -> str:
        """The FSM side's task queue: its own when it shadows (hybrid.fsm_settings)."""
        return self.queue + ("-shadow" if self.shadow == "fsm" else "")

    async def terminate(self, client: Client) -> None:
        await terminate_queue(client, self.fsm_queue)

    def start(self) -> None:
        self.procs.append(
            spawn("starter.py", "--config", str(self.cfg), env=self.env, log=self.log)
        )

    def kill(self) -> None:
        for p in self.procs:
            kill(p)

    def tail(self) -> str:
        return self.log.read_text()[-1500:] if self.log.exists() else ""

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run("starter.py", *args, "--config", str(self.cfg), env=self.env)

    def legacy(self) -> CoinState | None:
        return read_state(state_path(self.data)).coins.get(self.symbol)

    def wait_legacy(self, predicate: Callable[[CoinState], bool], what: str) -> CoinState:
        state: CoinState = wait_until(
            lambda: (s := self.legacy()) is not None and predicate(s) and s,
            timeout=120,
            what=f"{what} ({self.tail()})",
        )
        return state

    async def wait_both(self, client: Client, wf_id: str, predicate: Pred, what: str) -> None:
        await wait_state(client, wf_id, predicate, timeout=120, what=f"FSM {what}")
        self.wait_legacy(predicate, f"legacy {what}")

    def wait_trades(self, n: int, *, each: bool = False) -> list[TradeRecord]:
        """``n`` trades in the ledger (``each``: ``n`` of each engine)."""
        ledger = self.data / "ledger.sqlite"

        def enough() -> list[TradeRecord] | None:
            trades = read_trades(ledger) if ledger.exists() else []
            counts = [sum(t.engine == e for t in trades) for e in ("fsm", "legacy")]
            return trades if (min(counts) if each else len(trades)) >= n else None

        trades: list[TradeRecord] = wait_until(
            enough, timeout=240, what=f"{n} trade(s) in the ledger ({self.tail()})"
        )
        return trades

    def events(self) -> list[dict[str, Any]]:
        return sorted(
            (
                json.loads(line)
                for file in (self.data / "logs").glob("*.jsonl")
                for line in file.read_text().splitlines()
            ),
            key=lambda e: e["ts"],
        )

    def placed(self) -> dict[str, list[tuple[str, str]]]:
        """Per engine, (client id, side) of every order it placed, in order (phase log)."""
        out: dict[str, list[tuple[str, str]]] = {"fsm": [], "legacy": []}
        for e in self.events():
            if e["trigger"] == "order_placed":
                side = "buy" if e["src"] == "place_buy" else "sell"
                out[e["engine"]].append((e["client_order_id"], side))
        return out


def orders_in(db: Path) -> list[tuple[str, str]]:
    """(client id, side) of every order a paper account received, in order."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT client_order_id, body FROM orders ORDER BY seq").fetchall()
    return [(coid, json.loads(body)["side"]) for coid, body in rows]


SYMBOLS = {"fsm": "SOL/USDT", "legacy": "ETH/USDT"}


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def trades_counted(text: str) -> dict[str, float]:
    """``trader_trades_closed_total`` summed per ``engine`` label."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "trader_trades_closed_total":
                engine = sample.labels["engine"]
                out[engine] = out.get(engine, 0.0) + sample.value
    return out


def metered(
    tmp: Path,
    client: Client,
    symbol: str,
    primary: str,
    port: int,
    env: dict[str, str] | None = None,
    **settings: str,
) -> Both:
    """A ``Both`` serving its metrics on ``port`` (and the SDK's on none)."""
    return Both(
        tmp,
        client,
        symbol,
        primary=primary,
        env=env,
        enable_prometheus="true",
        prometheus_port=str(port),
        temporal_metrics_port="0",
        **settings,
    )


@pytest.mark.parametrize("primary", ["fsm", "legacy"])
async def test_both_on_paper(dev_env, tmp_path: Path, primary: str) -> None:
    client, symbol, port = dev_env.client, SYMBOLS[primary], free_port()
    both = metered(tmp_path, client, symbol, primary, port)
    shadow, wf_id = both.shadow, ids.workflow_id_for("paper", symbol)
    try:
        both.start()
        await both.wait_both(client, wf_id, lambda s: s.phase is not Phase.WARMUP, "warmed up")
        status = both.command("status", "--once", "--show-idle")
        assert status.returncode == 0, status.stderr
        assert f"{primary} (primary)" in status.stdout
        assert f"{shadow} (shadow, simulated)" in status.stdout
        assert status.stdout.count(symbol) >= 2, status.stdout  # a row on each side
        # Trading on the generated market: a trade on each side.
        both.wait_trades(1, each=True)
        # An operator command reaches both sides, each answering on its own line; paused
        # and flat, neither side trades until resumed.
        paused = both.command("pause")
        assert paused.returncode == 0, paused.stdout + paused.stderr
        fsm_label = "fsm (primary)" if primary == "fsm" else "fsm (shadow, simulated)"
        assert f"{fsm_label}: paused: {symbol}" in paused.stdout, paused.stdout
        assert f": {symbol}: accepted" in paused.stdout, paused.stdout
        quiet = lambda s: s.controls.entries_paused and s.phase is Phase.IDLE  # noqa: E731
        await both.wait_both(client, wf_id, quiet, "paused in IDLE")
        # One endpoint, each engine's series under its label, each counting its own trades.
        text = scrape(port)
        assert text.count("# HELP trader_trades_closed_total ") == 1
        ledger = read_trades(both.data / "ledger.sqlite")
        assert trades_counted(text) == {
            e: float(sum(t.engine == e for t in ledger)) for e in ("fsm", "legacy")
        }
        resumed = both.command("resume")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        both.wait_legacy(lambda s: not s.controls.entries_paused, "legacy resumed")
        # SIGKILL, restart: both sides go on, nothing of either forgotten or doubled.
        both.kill()
        before = read_trades(both.data / "ledger.sqlite")
        both.start()
        trades = both.wait_trades(len(before) + 1)
        both.kill()
    finally:
        both.kill()
        await both.terminate(client)
    assert {t.trade_id for t in before} <= {t.trade_id for t in trades}
    by_id = {t.trade_id: t for t in trades}
    assert len(by_id) == len(trades)
    shadow_trades = [t for t in trades if t.engine == shadow]
    assert shadow_trades and all(t.simulated for t in shadow_trades)
    legacy_ids = {t.trade_id for t in trades if t.engine == "legacy"}
    fsm_ids = {t.trade_id for t in trades if t.engine == "fsm"}
    assert fsm_ids and legacy_ids and not fsm_ids & legacy_ids
    assert all(":lg" in i for i in legacy_ids)  # the legacy lineage's prefix (hybrid.py)
    # The primary's orders, each once, in the paper account; the shadow's only in its own.
    placed = both.placed()
    accounts = {
        primary: orders_in(tmp_path / "data" / "paper.sqlite"),
        shadow: orders_in(tmp_path / "data" / f"shadow-{shadow}-paper.sqlite"),
    }
    for engine, orders in accounts.items():
        # The last kill may have come between an order's send and its phase event.
        assert orders[: len(placed[engine])] == placed[engine], engine
        assert len(orders) - len(placed[engine]) <= 1, engine
    assert not {c for c, _ in accounts[primary]} & {c for c, _ in accounts[shadow]}
    assert len({c for c, _ in placed[primary] + placed[shadow]}) == sum(map(len, placed.values()))


def _exits(texts: list[str]) -> list[str]:
    return [t for t in texts if t.removeprefix("[SIMULATED] ").startswith("SELL")]


@pytest.mark.parametrize("primary", ["fsm", "legacy"])
async def test_both_telegram_hears_the_primary_only(dev_env, tmp_path: Path, primary: str) -> None:
    """The shadow's entry and exit messages are logged, never sent: the chat gets one exit
    message per trade of the primary, none of the shadow's."""
    client, symbol = dev_env.client, {"fsm": "XRP/USDT", "legacy": "BTC/USDT"}[primary]
    with FakeBotApi() as bot:
        env = {"TELEGRAM_TOKEN": "606060:E2E-tok", "TELEGRAM_CHAT_IDS": "5150515"}
        both = Both(
            tmp_path, client, symbol, primary=primary, env=env | {"TELEGRAM_API_URL": bot.url}
        )
        try:
            both.start()
            both.wait_trades(1, each=True)
            wait_until(lambda: _exits(bot.texts()), timeout=60, what="an exit message")
        finally:
            both.kill()
            await both.terminate(client)
        texts = bot.texts()
    trades = read_trades(both.data / "ledger.sqlite")
    mine = [t for t in trades if t.engine == primary]
    exits = _exits(texts)
    assert 1 <= len(exits) <= len(mine), texts  # a shadow's message would push it past
    assert any(t.engine == both.shadow for t in trades)
    assert f"notify ({both.shadow} shadow, not sent)" in both.log.read_text()
