"""docker-compose.yml and the Grafana provisioning it mounts, checked structurally.

Docker cannot run in CI, so this parses the files and checks what would make
``docker compose up`` fail or Grafana come up without its dashboards: images
pinned, ports well formed and unique, health checks on every long-running
service, every mounted or built repository path present, dependencies waiting for
health, and the provisioning files agreeing with the dashboards and with each other.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.generate import GENERATED_DIR
from dashboards.model import DATASOURCE_NAME, DATASOURCE_UID

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"

LONG_RUNNING = {"kafka", "influxdb", "grafana", "worker", "workorders", "workorders-api"}
ONE_SHOT = {"simulator", "simulate"}
EXPECTED_IMAGES = {
    "kafka": r"apache/kafka:4\.\d+\.\d+",
    "influxdb": r"influxdb:1\.8\.\d+",
    "grafana": r"grafana/grafana:\d+\.\d+\.\d+",
    "worker": r"lineloss:local",
    "simulator": r"lineloss:local",
    "simulate": r"lineloss:local",
    "workorders": r"lineloss:local",
    "workorders-api": r"lineloss:local",
}
EXPECTED_PORTS = {
    "kafka": {"9092:9092"},
    "influxdb": {"127.0.0.1:8086:8086"},
    "grafana": {"3000:3000"},
    "workorders-api": {"8080:8080"},
}


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def test_every_service_is_known(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == LONG_RUNNING | ONE_SHOT


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        image = svc["image"]
        assert re.fullmatch(EXPECTED_IMAGES[name], image), (name, image)
        assert not image.endswith(":latest")


def test_ports(services: dict[str, dict[str, Any]]) -> None:
    host_ports = []
    for name, svc in services.items():
        ports = set(svc.get("ports", []))
        assert ports == EXPECTED_PORTS.get(name, set()), name
        for p in ports:
            assert re.fullmatch(r"(127\.0\.0\.1:)?\d{2,5}:\d{2,5}", p), p
            host_ports.append(p.rsplit(":", 2)[-2])
    assert len(host_ports) == len(set(host_ports)), "two services publish the same host port"


def test_health_checks(services: dict[str, dict[str, Any]]) -> None:
    for name in LONG_RUNNING:
        hc = services[name].get("healthcheck")
        assert hc, f"{name} has no health check"
        test = hc["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), name
        for key in ("interval", "timeout", "retries"):
            assert key in hc, (name, key)
    for name in ONE_SHOT:
        assert services[name].get("restart") == "no"


def test_dependencies_wait_for_health(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for dep, cond in svc.get("depends_on", {}).items():
            assert dep in services, (name, dep)
            assert cond == {"condition": "service_healthy"}, (name, dep)
            assert "healthcheck" in services[dep], (name, dep)


def _bind_mounts(svc: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for v in svc.get("volumes", []):
        source, target = v.split(":")[:2]
        if source.startswith((".", "/")):
            out.append((source, target))
    return out


def test_every_mounted_or_built_repo_path_exists(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    named = set(compose.get("volumes", {}))
    for name, svc in services.items():
        for source, _ in _bind_mounts(svc):
            assert source.startswith("./"), f"{name}: bind mount outside the repo: {source}"
            assert (REPO / source).exists(), f"{name}: {source} does not exist"
        for v in svc.get("volumes", []):
            source = v.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in named, f"{name}: volume {source} is not declared"
        if "build" in svc:
            context = REPO / svc["build"]["context"]
            assert context.is_dir()
            assert (context / svc["build"]["dockerfile"]).is_file(), name


def test_grafana_mounts_provisioning_and_the_generated_dashboards(
    services: dict[str, dict[str, Any]],
) -> None:
    mounts = dict(_bind_mounts(services["grafana"]))
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboards_target = mounts["./dashboards/generated"]
    [provider] = load(PROVISIONING / "dashboards" / "lineloss.yaml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == dashboards_target
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dashboards_target + "/")
    assert (GENERATED_DIR / Path(home).name).is_file()
    assert REPO / "dashboards" / "generated" == GENERATED_DIR


def test_datasource_provisioning_matches_influxdb_and_dashboards(
    services: dict[str, dict[str, Any]],
) -> None:
    [ds] = load(PROVISIONING / "datasources" / "lineloss-influxdb.yaml")["datasources"]
    assert (ds["uid"], ds["name"]) == (DATASOURCE_UID, DATASOURCE_NAME)
    assert (ds["type"], ds["jsonData"]["version"]) == ("influxdb", "InfluxQL")
    assert ds["url"] == "http://influxdb:8086"
    assert ds["jsonData"]["dbName"] == services["influxdb"]["environment"]["INFLUXDB_DB"]
    for path in GENERATED_DIR.glob("*.json"):
        variables = json.loads(path.read_text(encoding="utf-8"))["templating"]["list"]
        assert variables[0]["current"]["value"] == DATASOURCE_UID, path.name


def test_kafka_is_a_single_kraft_node(services: dict[str, dict[str, Any]]) -> None:
    env = services["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16
    listeners = dict(x.split("://") for x in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(x.split("://") for x in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert set(advertised) <= set(listeners)
    assert advertised["INTERNAL"] == "kafka:19092"
    assert "kafka:9093" in env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    mounts = [v.split(":")[1] for v in services["kafka"]["volumes"]]
    assert env["KAFKA_LOG_DIRS"] in mounts


def test_worker_and_simulator(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert worker["profiles"] == ["worker"]
    assert [*worker["entrypoint"], *worker["command"]] == ["lineloss", "worker"]
    assert worker["environment"]["LINELOSS_KAFKA_BOOTSTRAP"] == "kafka:19092"
    sim = services["simulator"]
    assert sim["profiles"] == ["simulator"]
    script = " ".join(sim["command"])
    assert "lineloss replay" in script and "--influx-url http://influxdb:8086" in script
    assert f"--influx-db {services['influxdb']['environment']['INFLUXDB_DB']}" in script
    live = services["simulate"]
    assert live["profiles"] == ["live"]
    assert [*live["entrypoint"], *live["command"]][:2] == ["lineloss", "simulate"]
    assert (
        live["environment"]["LINELOSS_KAFKA_BOOTSTRAP"]
        == worker["environment"]["LINELOSS_KAFKA_BOOTSTRAP"]
    )
    # the command parses: every option exists in the CLI
    from lineloss.cli import build_parser

    args = build_parser().parse_args([c.replace("${SIM_SPEED:-96}", "96") for c in live["command"]])
    assert args.speed == 96 and args.backfill_h == 24


def test_dockerfile_installs_the_package(services: dict[str, dict[str, Any]]) -> None:
    dockerfile = (REPO / services["worker"]["build"]["dockerfile"]).read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M)
    assert 'ENTRYPOINT ["lineloss"]' in dockerfile
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "var" in ignored
