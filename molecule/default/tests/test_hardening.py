"""Every container on the host is hardened (CIS Docker Benchmark, section 5).

All of them, from `docker ps -a`: a container added later (a new service, a one-shot
left behind) fails here until it has a row in HARDENING and meets it. The same rules
are checked statically against both compose files in tests/docker/test_compose_files.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

# One row per compose service (label com.docker.compose.service).
#   user     "uid:gid" set in the compose file, "image" for the image's own non-root
#            USER, or "root" with a reason
#   cap_add  capabilities added back after dropping ALL
#   publish  publishes the API port on backend_publish_address
HARDENING: dict[str, dict[str, Any]] = {
    "proxy": {"user": "65534:65534", "cap_add": [], "publish": True},
    "backend-blue": {"user": "appuser", "cap_add": [], "publish": False},
    "backend-green": {"user": "appuser", "cap_add": [], "publish": False},
    # root: the entrypoint chowns PGDATA and /var/run/postgresql, then drops to
    # postgres; the compose files explain each capability.
    "postgres": {
        "user": "",
        "cap_add": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETGID", "CAP_SETUID"],
        "publish": False,
    },
}
API_PORT = "8000/tcp"
TLS_PORT = "8443/tcp"
METRICS_PORT = "9464/tcp"


def _inspect(sh) -> list[dict[str, Any]]:
    ids = sh("docker ps -aq --no-trunc").split()
    assert ids, "no container on the host"
    return list(json.loads(sh("docker inspect " + " ".join(ids))))


@pytest.fixture()
def containers(sh) -> list[dict[str, Any]]:
    """`docker inspect` of every container on the host, running or not."""
    return _inspect(sh)


def _name(container: dict[str, Any]) -> str:
    return str(container["Name"]).lstrip("/")


def _row(container: dict[str, Any]) -> dict[str, Any]:
    service = (container["Config"].get("Labels") or {}).get("com.docker.compose.service", "")
    assert service in HARDENING, (
        f"{_name(container)} (service {service or 'none'}) has no row in HARDENING: harden it, "
        "then add one"
    )
    return HARDENING[service]


def _normalise(caps: list[str] | None) -> list[str]:
    return sorted(c if c.startswith("CAP_") else f"CAP_{c}" for c in caps or [])


def test_every_container_is_known(containers):
    for container in containers:
        _row(container)


def test_every_container_runs_as_its_documented_user(containers):
    for container in containers:
        wanted = _row(container)["user"]
        assert container["Config"]["User"] == wanted, (
            f"{_name(container)} runs as {container['Config']['User']!r}, expected {wanted!r}"
        )


def test_every_container_drops_all_capabilities_but_its_documented_ones(containers):
    for container in containers:
        host_config = container["HostConfig"]
        assert _normalise(host_config["CapDrop"]) == ["CAP_ALL"], (
            f"{_name(container)} drops {host_config['CapDrop']}, expected ALL"
        )
        wanted = sorted(_row(container)["cap_add"])
        assert _normalise(host_config["CapAdd"]) == wanted, (
            f"{_name(container)} adds {host_config['CapAdd']}, expected {wanted}"
        )


def test_every_container_has_a_read_only_root_filesystem(containers):
    for container in containers:
        assert container["HostConfig"]["ReadonlyRootfs"], f"{_name(container)} is writable"


def test_no_container_can_gain_privileges(containers):
    for container in containers:
        options = container["HostConfig"]["SecurityOpt"] or []
        assert "no-new-privileges:true" in options, (
            f"{_name(container)} lacks no-new-privileges:true ({options})"
        )


def test_every_container_has_a_pids_limit(containers):
    for container in containers:
        assert (container["HostConfig"]["PidsLimit"] or 0) > 0, (
            f"{_name(container)} has no pids limit"
        )


def test_every_container_has_memory_and_cpu_limits(containers):
    for container in containers:
        host_config = container["HostConfig"]
        assert host_config["Memory"] > 0, f"{_name(container)} has no memory limit"
        assert host_config["NanoCpus"] > 0, f"{_name(container)} has no CPU limit"


def test_every_container_bounds_its_logs(containers):
    for container in containers:
        log = container["HostConfig"]["LogConfig"]
        assert log["Type"] == "json-file", f"{_name(container)} logs to {log['Type']}"
        assert log["Config"].get("max-size") and int(log["Config"].get("max-file", "0")) > 0, (
            f"{_name(container)} has no log limits of its own: {log['Config']}"
        )


def test_only_the_proxy_publishes_and_on_the_configured_address(containers, local_vars):
    address = str(local_vars["backend_publish_address"])
    for container in containers:
        bindings = container["HostConfig"]["PortBindings"] or {}
        if not _row(container)["publish"]:
            assert not bindings, f"{_name(container)} publishes {bindings}"
            continue
        # With TLS on (test_tls leaves it on), the proxy also publishes HTTPS, and then
        # mounts its key's directory (docker/docker-compose.tls.yml).
        # And the slots' metrics (its metrics server), on their own address.
        tls = "/etc/nica-proxy-key" in [m.get("Destination") for m in container["Mounts"]]
        expected = [API_PORT] + ([TLS_PORT] if tls else []) + [METRICS_PORT]
        assert sorted(bindings) == expected, f"{_name(container)} publishes {list(bindings)}"
        metrics_ips = sorted({b["HostIp"] for b in bindings[METRICS_PORT]})
        assert metrics_ips == [str(local_vars["backend_metrics_publish_address"])], metrics_ips
        for port in expected[:-1]:
            host_ips = sorted({b["HostIp"] for b in bindings[port]})
            assert host_ips == [address], (
                f"{_name(container)} publishes {port} on {host_ips}, expected [{address!r}]"
            )


def test_no_container_mounts_the_docker_socket(containers):
    for container in containers:
        sources = [m.get("Source", "") for m in container["Mounts"]]
        assert not [s for s in sources if s.endswith("docker.sock")], (
            f"{_name(container)} mounts the Docker socket: {sources}"
        )
