"""Telegram end to end: real worker processes send through python-telegram-bot to the local
fake Bot API. A worker SIGKILLed while its entry message is on the wire: still once. And the
token and chat id appear in none of the run's outputs (history, logs, JSONL, metrics)."""

from __future__ import annotations

import asyncio
import base64
import signal
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

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
from trader.core import ids
from trader.ledger import read_trades
from trader.telegram_sim import FakeBotApi, Fault

pytestmark = pytest.mark.e2e

SYMBOL = "XRP/USDT"
TOKEN = "606060:E2E-secret-token-Xy7Qp"
CHAT = "5150515"


def _kinds(texts: list[str]) -> list[str]:
    return [t.removeprefix("[SIMULATED] ").split(" ", 1)[0] for t in texts]


async def test_sigkill_mid_send_still_once_and_no_secret_in_outputs(dev_env, tmp_path: Path):
    client = dev_env.client
    queue = f"tg-{uuid.uuid4().hex[:6]}"
    data = tmp_path / "data"
    cfg = write_config(
        tmp_path / "cfg.toml",
        address=client.service_client.config.target_host,
        data_dir=data,
        queue=queue,
        watchlist=(SYMBOL,),
    )
    with FakeBotApi() as sim:
        # The entry message reaches Telegram, whose answer never comes back in time.
        sim.add_fault(Fault("hang", match="BUY", seconds=60))
        metrics_port = free_port()
        env = {
            "TELEGRAM_TOKEN": TOKEN,
            "TELEGRAM_CHAT_IDS": CHAT,
            "TELEGRAM_API_URL": sim.url,
            "ENABLE_PROMETHEUS": "true",
            "PROMETHEUS_PORT": str(metrics_port),
            "TEMPORAL_METRICS_PORT": "0",
        }
        started = run("starter.py", "--config", str(cfg), "start", "--no-worker")
        assert started.returncode == 0, started.stderr
        log = tmp_path / "workers.log"
        workers = [spawn("worker.py", "--config", str(cfg), log=log, env=env)]
        try:
            wait_until(lambda: "BUY" in _kinds(sim.texts()), timeout=180, what="the entry message")
            kill(workers[0])  # mid-send: Telegram has it, the worker never heard back
            workers.append(spawn("worker.py", "--config", str(cfg), log=log, env=env))
            ledger = data / "ledger.sqlite"
            wait_until(
                lambda: ledger.exists() and read_trades(ledger),
                timeout=180,
                what="the trade to complete",
            )
            wait_until(lambda: "SELL" in _kinds(sim.texts()), timeout=60, what="the exit message")
            # Quiesce (entries paused, back in IDLE) before the kill: trading goes on, and a
            # trade booked just before it would still owe its exit message, which comes after
            # the ledger row (a loaded machine widens that gap).
            paused = run("starter.py", "--config", str(cfg), "pause")
            assert paused.returncode == 0, paused.stderr
            await wait_state(
                client,
                ids.workflow_id_for("paper", SYMBOL),
                lambda s: s.controls.entries_paused and s.phase.value == "idle",
                timeout=120,
                what="paused in IDLE",
            )
            wait_until(
                lambda: _kinds(sim.texts()).count("SELL") >= len(read_trades(ledger)),
                timeout=60,
                what="every booked trade's exit message",
            )
            await asyncio.sleep(12)  # past the killed attempt's timeout: its retry has run
            page = wait_until(lambda: _scrape(metrics_port), timeout=30, what="the metrics page")
        finally:
            for w in workers:
                kill(w)
        texts = sim.texts()
        trades = read_trades(data / "ledger.sqlite")
        history = await client.get_workflow_handle(
            ids.workflow_id_for("paper", SYMBOL)
        ).fetch_history()
        await terminate_queue(client, queue)

    counts = Counter(_kinds(texts))
    # One exit message per trade in the ledger, the killed one included; one entry message
    # per entry (paused in IDLE, every entry has its trade: the + 1 is only slack).
    assert counts["SELL"] == len(trades) >= 1, texts
    assert counts["BUY"] in (len(trades), len(trades) + 1), texts
    assert texts.count(sim.messages[0].text) == 1  # the one on the wire at the kill
    assert all(n == 1 for n in Counter(texts).values()), texts  # no message twice
    assert {m.chat_id for m in sim.messages} == {CHAT}
    # The retry of the killed send found its claim and did not resend (the sent-log).
    assert "died during its request" in log.read_text(errors="replace")

    outputs = {
        "history": history.to_json(),
        "history payloads": "\n".join(_payloads(history.to_json_dict())),
        "worker logs": log.read_text(errors="replace"),
        "metrics": page,
        **{str(p): p.read_text() for p in (data / "logs").glob("*.jsonl")},
    }
    assert any(p.endswith(".jsonl") for p in outputs)
    for where, text in outputs.items():
        assert TOKEN not in text, f"the token is in {where}"
        assert TOKEN.split(":")[1] not in text, f"the token's secret part is in {where}"
        assert CHAT not in text, f"the chat id is in {where}"


async def test_starter_telegram_is_a_process_answering_commands(dev_env, tmp_path: Path):
    """``python starter.py telegram`` as the one poller of the deployment: it answers the
    allowed chat from the fake Bot API (nothing runs on its queue: /status says so),
    ignores another chat, and ends cleanly on SIGTERM."""
    cfg = write_config(
        tmp_path / "cfg.toml",
        address=dev_env.client.service_client.config.target_host,
        data_dir=tmp_path / "data",
        queue=f"tgcmd-{uuid.uuid4().hex[:6]}",
        watchlist=(SYMBOL,),
    )
    with FakeBotApi() as sim:
        env = {"TELEGRAM_TOKEN": TOKEN, "TELEGRAM_CHAT_IDS": CHAT, "TELEGRAM_API_URL": sim.url}
        log = tmp_path / "telegram.log"
        bot = spawn("starter.py", "--config", str(cfg), "telegram", log=log, env=env)
        try:
            sim.inject("777", "/help")  # not an allowed chat: no answer
            sim.inject(CHAT, "/help")
            wait_until(lambda: sim.texts(CHAT), timeout=60, what="the answer to /help")
            sim.inject(CHAT, "/status")
            wait_until(lambda: len(sim.texts(CHAT)) == 2, timeout=60, what="/status answered")
            kill(bot, signal.SIGTERM)
        finally:
            kill(bot)
        helped, status = sim.texts(CHAT)
        assert "/forceexit SYMBOL|all" in helped and "/profit [days]" in helped, helped
        assert status == "no symbol running"
        assert sim.texts("777") == []
        assert bot.returncode == 0, log.read_text(errors="replace")[-2000:]
        assert "ignored a message from chat 777" in log.read_text(errors="replace")
        assert TOKEN.split(":")[1] not in log.read_text(errors="replace")


def _payloads(node: Any) -> list[str]:
    """Every payload's data in a history's JSON, decoded (it is base64 there)."""
    if isinstance(node, list):
        return [t for item in node for t in _payloads(item)]
    if not isinstance(node, dict):
        return []
    found = []
    if isinstance(node.get("data"), str):
        found.append(base64.b64decode(node["data"]).decode(errors="replace"))
    return found + [t for value in node.values() for t in _payloads(value)]


def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return str(r.read().decode())
    except OSError:
        return ""
