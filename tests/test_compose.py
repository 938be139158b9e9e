"""docker-compose.yml is complete and consistent (Docker cannot run here: structure only)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_required_services():
    assert {
        "postgresql",
        "temporal",
        "temporal-ui",
        "temporal-setup",
        "worker",
        "prometheus",
        "grafana",
    } <= set(SERVICES)


def test_startup_order_waits_for_health():
    assert SERVICES["temporal"]["depends_on"]["postgresql"]["condition"] == "service_healthy"
    assert SERVICES["worker"]["depends_on"]["temporal"]["condition"] == "service_healthy"
    assert (
        SERVICES["worker"]["depends_on"]["temporal-setup"]["condition"]
        == "service_completed_successfully"
    )
    assert "healthcheck" in SERVICES["postgresql"] and "healthcheck" in SERVICES["temporal"]


def test_images_are_pinned_and_ports_published():
    for name, svc in SERVICES.items():
        if "image" in svc:
            assert ":" in svc["image"] and not svc["image"].endswith(":latest"), name
        else:
            assert svc["build"] == "." and (ROOT / "Dockerfile").exists(), name
    assert "7233:7233" in SERVICES["temporal"]["ports"]
    assert "8233:8080" in SERVICES["temporal-ui"]["ports"]


def test_worker_points_at_the_cluster_and_config_exists():
    env = SERVICES["worker"]["environment"]
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
    config = SERVICES["worker"]["command"][-1]
    assert (ROOT / config.replace("/app/", "")).exists()
    assert not any("SECRET" in str(v) or "KEY=" in str(v) for v in env.values())


def test_the_telegram_bot_is_one_process_with_secrets_from_the_environment():
    """One poller per token (docs/telegram.md): one replica, its own service, the worker's
    cluster and ledger, the token and chats interpolated from the host's environment."""
    bot, worker = SERVICES["telegram"], SERVICES["worker"]
    command = bot["command"]
    assert command[:2] == ["python", "starter.py"] and command[-1] == "telegram"
    assert (ROOT / command[command.index("--config") + 1].replace("/app/", "")).exists()
    assert bot["deploy"]["replicas"] == 1 and "replicas" not in worker.get("deploy", {})
    env = bot["environment"]
    assert env["TELEGRAM_TOKEN"] == "${TELEGRAM_TOKEN}"
    assert env["TELEGRAM_CHAT_IDS"] == "${TELEGRAM_CHAT_IDS}"
    for key in ("TEMPORAL_ADDRESS", "LEDGER_URL", "PGPASSWORD", "DATA_DIR"):
        assert env[key] == worker["environment"][key], key
    assert bot["depends_on"]["temporal"]["condition"] == "service_healthy"
    assert bot["profiles"] == ["telegram"]  # the stack runs without a bot token


def test_search_attributes_registered_match_the_code():
    from trader.search import ALL_KEYS

    command = SERVICES["temporal-setup"]["command"]
    for key in ALL_KEYS:
        assert f"--name {key.name} --type {key.indexed_value_type.name.capitalize()}" in command


def _mounts(service: str) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (the host path must exist)."""
    out = {}
    for volume in SERVICES[service].get("volumes", []):
        host, container = volume.split(":")[:2]
        if host.startswith("./"):
            out[container] = ROOT / host
    return out


def test_prometheus_scrapes_every_worker_once():
    config = yaml.safe_load(_mounts("prometheus")["/etc/prometheus/prometheus.yml"].read_text())
    scrape = config["scrape_configs"]
    env = SERVICES["worker"]["environment"]
    ports = sorted(
        sd["port"]
        for job in scrape
        for sd in job.get("dns_sd_configs", [])
        if sd["names"] == ["worker"]
    )
    # Trader metrics and SDK metrics, each exactly once: a second job on the same target
    # would double every sum().
    assert ports == sorted([int(env["PROMETHEUS_PORT"]), int(env["TEMPORAL_METRICS_PORT"])])
    assert not any(job.get("static_configs") for job in scrape)
    assert env["PROMETHEUS_BIND_ADDRESS"] == "0.0.0.0"
    assert {str(p) for p in ports} <= set(SERVICES["worker"]["expose"])


def test_alert_rules_are_loaded_valid_and_use_real_metrics():
    mounts = _mounts("prometheus")
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    [rule_file] = config["rule_files"]
    rules = yaml.safe_load(mounts[rule_file].read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert {"TraderSymbolStuck", "TraderErrorsRepeating", "TraderWorkerDown"} <= {
        a["alert"] for a in alerts
    }
    from trader.observe.metrics import ShadowHealth, TraderMetrics

    names = {m.name for m in TraderMetrics("w").registry.collect()}
    names |= {m.name for m in ShadowHealth("legacy", "w").registry.collect()}  # both mode
    for alert in alerts:
        assert alert["expr"].strip() and alert["annotations"]["summary"], alert["alert"]
        used = re.findall(r"\b(trader_[a-z_]+?)(?:_bucket|_total)?\b", alert["expr"])
        assert all(name in names for name in used), (alert["alert"], used)


def test_grafana_provisions_the_dashboard():
    mounts = _mounts("grafana")
    provisioning, dashboards = (
        mounts["/etc/grafana/provisioning"],
        mounts["/var/lib/grafana/dashboards"],
    )
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090"
    [provider] = yaml.safe_load((provisioning / "dashboards" / "durable-trader.yml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboard = json.loads((dashboards / "durable-trader.json").read_text())
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("phase", "pnl", "orders", "errors", "stuck"):
        assert topic in titles, topic
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"]
        assert all(t["expr"] for t in panel["targets"]), panel["title"]
