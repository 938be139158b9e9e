"""docker-compose.yml is complete and consistent (Docker cannot run here: structure only)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_required_services():
    assert {"postgresql", "temporal", "temporal-ui", "temporal-setup", "worker", "prometheus",
            "grafana"} <= set(SERVICES)


def test_startup_order_waits_for_health():
    assert SERVICES["temporal"]["depends_on"]["postgresql"]["condition"] == "service_healthy"
    assert SERVICES["worker"]["depends_on"]["temporal"]["condition"] == "service_healthy"
    assert SERVICES["worker"]["depends_on"]["temporal-setup"]["condition"] == \
        "service_completed_successfully"
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


def test_search_attributes_registered_match_the_code():
    from trader.runtime.search import ALL_KEYS

    command = SERVICES["temporal-setup"]["command"]
    for key in ALL_KEYS:
        assert f"--name {key.name} --type {key.indexed_value_type.name.capitalize()}" in command


def test_prometheus_scrapes_the_worker():
    config = ROOT / SERVICES["prometheus"]["volumes"][0].split(":")[0]
    scrape = yaml.safe_load(config.read_text())["scrape_configs"]
    targets = [t for job in scrape for sc in job.get("static_configs", [])
               for t in sc["targets"]]
    assert "worker:8000" in targets
