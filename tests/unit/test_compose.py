"""docker-compose.yml, read as YAML (no Docker engine runs here): what it must guarantee, and that
the README's host-side variables reach what it publishes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
API_INSTANCES = ("api-1", "api-2", "api-3")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = compose["services"]
    assert set(services) == {"kafka", "mongo", "gateway", "projector", *API_INSTANCES}
    return dict(services)


def _named_volume(compose: dict[str, Any], service: str, target: str) -> str:
    """The named volume (declared at the top level) that ``service`` mounts at ``target``."""
    for mount in _services(compose)[service].get("volumes", []):
        source, _, path = mount.partition(":")
        if path.split(":")[0] == target:
            assert source in compose["volumes"], f"{source} is not a named volume"
            return source
    raise AssertionError(f"{service} mounts nothing at {target}")


def _published(compose: dict[str, Any], service: str, container_port: int) -> int:
    for mapping in _services(compose)[service]["ports"]:
        host, port, inside = mapping.rsplit(":", 2)
        assert host == "127.0.0.1"  # published on the loopback only
        if int(inside) == container_port:
            return int(port)
    raise AssertionError(f"{service} does not publish {container_port}")


def test_kafka_keeps_its_log_and_mongo_its_data_in_named_volumes(compose: dict[str, Any]) -> None:
    kafka = _services(compose)["kafka"]
    log_dirs = kafka["environment"]["KAFKA_LOG_DIRS"]
    assert not log_dirs.startswith("/tmp")
    assert _named_volume(compose, "kafka", log_dirs) == "kafka-data"
    # A fixed cluster id: the restarted broker must find the formatted log dir its own.
    assert kafka["environment"]["CLUSTER_ID"]
    assert _named_volume(compose, "mongo", "/data/db") == "mongo-data"


def test_kafka_runs_the_version_the_tests_run() -> None:
    script = (ROOT / "scripts" / "servers" / "kafka").read_text()
    tested = re.search(r"^version=([0-9.]+)$", script, re.M)
    assert tested is not None
    compose_text = (ROOT / "docker-compose.yml").read_text()
    assert f"image: apache/kafka:{tested.group(1)}" in compose_text
    services = yaml.safe_load(compose_text)["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{tested.group(1)}"


def test_the_jwt_secret_is_required_not_defaulted(compose: dict[str, Any]) -> None:
    for api in API_INSTANCES:
        secret = _services(compose)[api]["environment"]["BALANCE_JWT_SECRET"]
        assert re.fullmatch(r"\$\{BALANCE_JWT_SECRET:\?[^}]+\}", secret), secret
    assert "change-me" not in (ROOT / "docker-compose.yml").read_text()


def test_every_service_restarts_and_the_api_reports_its_readiness(
    compose: dict[str, Any],
) -> None:
    for name, service in _services(compose).items():
        assert service.get("restart") in {"unless-stopped", "always", "on-failure"}, name
    for api in API_INSTANCES:
        check = _services(compose)[api]["healthcheck"]["test"]
        assert check[0] == "CMD"
        assert any("http://127.0.0.1:8000/health/ready" in part for part in check)
    for dependent in (*API_INSTANCES, "projector"):
        depends = _services(compose)[dependent]["depends_on"]
        assert depends == {
            "kafka": {"condition": "service_healthy"},
            "mongo": {"condition": "service_healthy"},
        }


def _mongo_check_script(compose: dict[str, Any]) -> str:
    test = _services(compose)["mongo"]["healthcheck"]["test"]
    assert test[:4] == ["CMD", "mongosh", "--quiet", "--eval"]
    return str(test[4])


@pytest.mark.parametrize(
    ("initiated", "primary", "initiates", "status"),
    [
        (False, False, True, 1),  # first run: initiates, not yet PRIMARY
        (True, False, False, 1),  # electing (or SECONDARY): not healthy
        (True, True, False, 0),  # PRIMARY: healthy
    ],
)
def test_the_mongo_healthcheck_passes_only_on_a_primary(
    compose: dict[str, Any], initiated: bool, primary: bool, initiates: bool, status: int
) -> None:
    """Runs the check's script under Node with mongosh's rs, db and quit replaced by stand-ins
    in each state of the node."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the script cannot be run here")
    stand_ins = f"""
        let initiated = {json.dumps(initiated)}, calls = [];
        const rs = {{
            status() {{ if (!initiated) throw new Error("NotYetInitialized"); return {{ok: 1}}; }},
            initiate(config) {{ calls.push(config); initiated = true; return {{ok: 1}}; }},
        }};
        const db = {{ hello() {{ return {{isWritablePrimary: {json.dumps(primary)}}}; }} }};
        const quit = (code) => {{ console.log(JSON.stringify({{code, calls}})); process.exit(0); }};
    """
    result = subprocess.run(
        [node, "-e", stand_ins + _mongo_check_script(compose)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    outcome = json.loads(result.stdout)
    assert outcome["code"] == status
    members = [{"_id": 0, "host": "mongo:27017"}]
    assert outcome["calls"] == ([{"_id": "rs0", "members": members}] if initiates else [])


def test_the_readme_variables_reach_what_compose_publishes(compose: dict[str, Any]) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Kafka + MongoDB") :]
    kafka = re.search(r"BALANCE_KAFKA_BOOTSTRAP=127\.0\.0\.1:(\d+)", section)
    mongo = re.search(r"BALANCE_MONGO_URL='mongodb://127\.0\.0\.1:(\d+)/\?([^']*)'", section)
    assert kafka is not None
    assert mongo is not None
    assert int(kafka.group(1)) == _published(compose, "kafka", 19092)
    advertised = _services(compose)["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"HOST://localhost:{kafka.group(1)}" in advertised
    assert int(mongo.group(1)) == _published(compose, "mongo", 27017)
    # The replica set's member is mongo:27017, unknown to the host: connect to the node itself.
    assert "directConnection=true" in mongo.group(2).split("&")
    # The same ports as the local servers, so one set of variables serves both.
    assert _default_port("mongo", "MONGO_PORT") == int(mongo.group(1))
    assert _default_port("kafka", "KAFKA_PORT") == int(kafka.group(1))
    assert "balance token" in section  # how to get a token for the compose API


def _default_port(server: str, variable: str) -> int:
    """The port scripts/servers/<server> listens on by default."""
    script = (ROOT / "scripts" / "servers" / server).read_text()
    found = re.search(rf"^port=\$\{{{variable}:-(\d+)\}}$", script, re.M)
    assert found is not None
    return int(found.group(1))


def test_the_image_installs_the_drivers_of_the_backends_compose_selects(
    compose: dict[str, Any],
) -> None:
    """The drivers are optional extras named as the backends: the image must install each one a
    service selects."""
    match = re.search(r"^ARG EXTRAS=(\S*)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert match is not None, "the Dockerfile declares no EXTRAS"
    extras = set(match.group(1).split(","))
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    selected = {
        service["environment"][name]
        for service in _services(compose).values()
        for name in ("BALANCE_EVENT_STORE", "BALANCE_READ_MODEL")
        if name in service.get("environment", {})
    }
    assert selected == {"kafka", "mongo"}
    assert selected <= extras <= set(optional)


def test_three_instances_share_a_six_partition_topic_behind_one_gateway(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    advertised = set()
    for api in API_INSTANCES:
        environment = services[api]["environment"]
        assert environment["BALANCE_KAFKA_PARTITIONS"] == "6"
        assert environment["BALANCE_EVENT_STORE"] == "kafka"
        # Each instance tells the others where to forward, by the name the network resolves.
        assert environment["BALANCE_ADVERTISED_URL"] == f"http://{api}:8000"
        advertised.add(environment["BALANCE_ADVERTISED_URL"])
        assert "ports" not in services[api]  # reached through the gateway only
        assert _named_volume(compose, api, "/data") == f"{api}-data"
    assert len(advertised) == len(API_INSTANCES)
    gateway = services["gateway"]
    assert gateway["image"].startswith("nginx:")
    assert _published(compose, "gateway", 8000) == 8000
    (mounted,) = gateway["configs"]
    config = compose["configs"][mounted["source"]]["content"]
    upstream = re.search(r"upstream api \{(.*?)\}", config, re.S)
    assert upstream is not None
    servers = re.findall(r"server (\S+):8000", upstream.group(1))
    assert sorted(servers) == sorted(API_INSTANCES)
    assert "proxy_pass http://api;" in config
    # Compose interpolates ``$``: nginx's variables must be escaped as ``$$``.
    assert re.search(r"(?<!\$)\$(?!\$)[a-z]", config) is None
