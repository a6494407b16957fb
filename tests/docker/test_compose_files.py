"""The two compose files agree: the guide's single backend (docker-compose.deploy.yml,
the compose-only flow) and the host's blue/green slots (docker-compose.host.yml, what
roles/stack deploys) are the same service apart from what makes a slot a slot."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"

# The container rules (CIS Docker Benchmark, section 5), one row per service, for both
# compose files; molecule/default/tests/test_hardening.py checks the same on a host.
#   user     who it runs as: a "uid:gid" in the compose file, "image" for the image's
#            own non-root USER (the Dockerfile's appuser), "root" only with a reason
#   cap_add  the capabilities added back after cap_drop: [ALL]
#   publish  whether it publishes a port (the proxy on the host; the guide's backend)
HARDENING: dict[str, dict[str, Any]] = {
    "proxy": {"user": "65534:65534", "cap_add": [], "publish": True},
    "backend": {"user": "image", "cap_add": [], "publish": False},
    # root: the entrypoint prepares PGDATA and the socket directory, then drops to
    # postgres (gosu/setpriv) with SETUID/SETGID; each capability is explained in
    # the compose files.
    "postgres": {
        "user": "root",
        "cap_add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"],
        "publish": False,
    },
}
GUIDE_PUBLISHES = {"backend"}  # the compose-only flow has no proxy
# A value compose takes from the .env, with a default: ${NAME:-default}.
INTERPOLATED = re.compile(r"^\$\{[A-Z_]+:-([^}]+)\}$")
# What may differ between the guide's backend and a slot: the slot's image and
# release (env_file), its limits (they belong to the release), no published port
# (the proxy owns it), how fast it is probed while starting, and no build section.
SLOT_ONLY = {"image", "env_file", "mem_limit", "cpus", "ports", "healthcheck", "build"}
# What each slot is told about itself (nica_release_info's labels), beyond the guide's.
SLOT_ENVIRONMENT = {"NICA_SLOT", "NICA_RELEASE"}


def load(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((DOCKER / name).read_text()))


@pytest.fixture(scope="module")
def guide() -> dict[str, Any]:
    return load("docker-compose.deploy.yml")


@pytest.fixture(scope="module")
def host() -> dict[str, Any]:
    return load("docker-compose.host.yml")


@pytest.mark.parametrize("slot", ["backend-blue", "backend-green"])
def test_a_slot_is_the_guides_backend(guide, host, slot):
    ours = {k: v for k, v in host["services"][slot].items() if k not in SLOT_ONLY}
    # The API keys' hashes are the deploy's (roles/stack writes the file, "[]" with no keys);
    # the guide's compose-only flow has none, so its stack needs no such file.
    assert "api_keys" in ours["secrets"], f"{slot} does not mount the API keys' file"
    ours["secrets"] = [name for name in ours["secrets"] if name != "api_keys"]
    theirs = {k: v for k, v in guide["services"]["backend"].items() if k not in SLOT_ONLY}
    environment = ours.pop("environment")
    assert {k: v for k, v in environment.items() if k not in SLOT_ENVIRONMENT} == theirs.pop(
        "environment"
    ), f"{slot}'s environment and the guide's backend's differ beyond {sorted(SLOT_ENVIRONMENT)}"
    assert environment["NICA_SLOT"] == slot.removeprefix("backend-")
    assert ours == theirs, f"{slot} and the guide's backend differ beyond {sorted(SLOT_ONLY)}"


@pytest.mark.parametrize("slot", ["backend-blue", "backend-green"])
def test_a_slot_is_health_checked_by_readyz(guide, host, slot):
    assert (
        host["services"][slot]["healthcheck"]["test"]
        == guide["services"]["backend"]["healthcheck"]["test"]
    )


def test_only_the_proxy_is_published(host):
    published = sorted(name for name, service in host["services"].items() if service.get("ports"))
    assert published == ["proxy"], f"published services: {published}"


def test_no_service_mounts_the_docker_socket(host, guide):
    for compose in (host, guide):
        for name, service in compose["services"].items():
            mounts = " ".join(str(v) for v in service.get("volumes", []))
            assert "docker.sock" not in mounts, f"{name} mounts the Docker socket"


def test_the_database_and_the_models_survive_down_v(host):
    volumes = host["volumes"]
    assert volumes["pg-data"].get("external") is True, "pg-data must be external"
    assert volumes["hf-cache"].get("external") is True, "hf-cache must be external"


def test_the_postgres_service_is_the_guides(guide, host):
    assert host["services"]["postgres"] == guide["services"]["postgres"]


def test_the_fleets_database_host_runs_the_hosts_postgres_plus_one_port(host):
    """docker-compose.database.yml (a fleet's database host) is the host stack's postgres,
    hardening and secret included, with one published port on the fleet's address."""
    database = load("docker-compose.database.yml")
    theirs = dict(database["services"]["postgres"])
    ports = theirs.pop("ports")
    assert theirs == host["services"]["postgres"], (
        "the database host's postgres differs beyond its port"
    )
    assert ports == [
        "${DATABASE_PUBLISH_ADDRESS:?the .env names no address to publish the database on}"
        ":${DATABASE_PUBLISH_PORT:-5432}:5432"
    ], f"expected one port on the fleet address, got {ports}"
    assert database["volumes"]["pg-data"].get("external") is True, "pg-data must be external"


# ---------------------------------------------------------------- hardening rules


def services() -> list[tuple[str, str, dict[str, Any]]]:
    """(file, service, definition) of every service of both compose files."""
    out = []
    for name in ("docker-compose.deploy.yml", "docker-compose.host.yml"):
        for service, definition in load(name)["services"].items():
            out.append((name, service, definition))
    return out


def rule(service: str) -> dict[str, Any]:
    kind = "backend" if service.startswith("backend") else service
    assert kind in HARDENING, f"{service} has no row in HARDENING: harden it, then add one"
    return HARDENING[kind]


SERVICES = pytest.mark.parametrize(
    ("compose", "service", "definition"),
    services(),
    ids=[f"{c.split('-')[-1].removesuffix('.yml')}-{s}" for c, s, _ in services()],
)


def interpolated_default(value: Any) -> str:
    match = INTERPOLATED.match(str(value))
    assert match, f"{value!r} should be ${{VARIABLE:-default}}, set from the .env"
    return match.group(1)


@SERVICES
def test_a_service_runs_as_its_documented_user(compose, service, definition):
    wanted = rule(service)["user"]
    if wanted == "image":
        assert "user" not in definition, f"{compose} {service}: the image's USER is its user"
        dockerfile = (DOCKER / "Dockerfile").read_text()
        assert re.search(r"^USER appuser$", dockerfile, re.M), "docker/Dockerfile: USER appuser"
    elif wanted == "root":
        assert "user" not in definition, f"{compose} {service}: root only by its entrypoint"
    else:
        assert definition.get("user") == wanted, f"{compose} {service} should run as {wanted}"


@SERVICES
def test_a_service_drops_every_capability_but_its_documented_ones(compose, service, definition):
    assert definition.get("cap_drop") == ["ALL"], f"{compose} {service} should drop ALL"
    assert sorted(definition.get("cap_add", [])) == sorted(rule(service)["cap_add"]), (
        f"{compose} {service} should add back exactly {rule(service)['cap_add']}"
    )


@SERVICES
def test_a_service_has_a_read_only_root_filesystem(compose, service, definition):
    assert definition.get("read_only") is True, f"{compose} {service} should be read_only"


@SERVICES
def test_a_service_cannot_gain_privileges(compose, service, definition):
    assert "no-new-privileges:true" in definition.get("security_opt", []), (
        f"{compose} {service} should set no-new-privileges:true"
    )


@SERVICES
def test_a_service_has_a_pids_limit_from_the_env(compose, service, definition):
    assert int(interpolated_default(definition.get("pids_limit"))) > 0, (
        f"{compose} {service} should have a positive pids_limit"
    )


@SERVICES
def test_a_service_has_memory_and_cpu_limits(compose, service, definition):
    assert interpolated_default(definition.get("mem_limit")), f"{compose} {service}: mem_limit"
    assert float(interpolated_default(definition.get("cpus"))) > 0, f"{compose} {service}: cpus"


@SERVICES
def test_a_service_bounds_its_own_logs(compose, service, definition):
    logging = definition.get("logging", {})
    options = logging.get("options", {})
    assert logging.get("driver") == "json-file", f"{compose} {service} should log to json-file"
    assert re.match(r"^\d+[kmg]$", interpolated_default(options.get("max-size"))), (
        f"{compose} {service} should rotate its log at a max-size"
    )
    assert int(interpolated_default(options.get("max-file"))) > 0, (
        f"{compose} {service} should keep a bounded number of log files"
    )


@SERVICES
def test_only_the_documented_services_publish_a_port(compose, service, definition):
    kind = "backend" if service.startswith("backend") else service
    guide_publishes = compose.endswith("deploy.yml") and kind in GUIDE_PUBLISHES
    wanted = rule(service)["publish"] or guide_publishes
    ports = definition.get("ports", [])
    if not wanted:
        assert not ports, f"{compose} {service} must not publish a port"
        return
    api = "${BACKEND_PUBLISH_ADDRESS:-127.0.0.1}:${BACKEND_PUBLISH_PORT:-8000}:8000"
    # The host's proxy also publishes the slots' metrics (nginx.conf), loopback by default.
    metrics = (
        "${BACKEND_METRICS_PUBLISH_ADDRESS:-127.0.0.1}:${BACKEND_METRICS_PUBLISH_PORT:-9464}:9464"
    )
    wanted_ports = [api, metrics] if compose.endswith("host.yml") and service == "proxy" else [api]
    assert ports == wanted_ports, (
        f"{compose} {service} should publish only on the configured addresses and ports"
    )


@SERVICES
def test_a_service_restarts_after_a_reboot(compose, service, definition):
    # unless-stopped, by choice (see the compose files): the status play shows a loop.
    assert definition.get("restart") == "unless-stopped", f"{compose} {service}: restart policy"


@pytest.mark.parametrize("compose", ["docker-compose.deploy.yml", "docker-compose.host.yml"])
def test_postgres_writes_only_to_its_volume_and_tmpfs(compose):
    postgres = load(compose)["services"]["postgres"]
    assert sorted(postgres.get("tmpfs", [])) == ["/tmp", "/var/run/postgresql"], (  # noqa: S108
        f"{compose} postgres should have tmpfs at /var/run/postgresql and /tmp"
    )


def test_the_tls_layer_only_publishes_https_beside_http_and_mounts_the_key_read_only(host):
    """docker-compose.tls.yml (layered in while TLS is on) changes the proxy alone: its TLS
    port on the same address as its plain one, and the key's directory, read-only, where
    docker/proxy/tls.conf reads the key."""
    layer = load("docker-compose.tls.yml")
    assert list(layer["services"]) == ["proxy"], f"the TLS layer changes {list(layer['services'])}"
    proxy = layer["services"]["proxy"]
    # The API's plain port (the metrics port is the host's other one).
    plain = host["services"]["proxy"]["ports"][0]
    assert plain.endswith(":8000"), plain
    [tls] = proxy["ports"]
    assert tls.split(":")[0] == plain.split(":")[0], f"HTTPS on {tls}, HTTP on {plain}"
    assert tls.endswith(":8443"), f"{tls}: not the container's 8443 (docker/proxy/tls.conf)"
    assert proxy["volumes"] == ["./proxy-key:/etc/nica-proxy-key:ro"], proxy["volumes"]
    key_path = "ssl_certificate_key /etc/nica-proxy-key/private_key.pem;"
    assert key_path in (DOCKER / "proxy" / "tls.conf").read_text()
