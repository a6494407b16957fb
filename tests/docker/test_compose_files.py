"""The two compose files agree: the guide's single backend (docker-compose.deploy.yml,
the compose-only flow) and the host's blue/green slots (docker-compose.host.yml, what
roles/backend deploys) are the same service apart from what makes a slot a slot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
# What may differ between the guide's backend and a slot: the slot's image and
# release (env_file), its limits (they belong to the release), no published port
# (the proxy owns it), how fast it is probed while starting, and no build section.
SLOT_ONLY = {"image", "env_file", "mem_limit", "cpus", "ports", "healthcheck", "build"}


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
    theirs = {k: v for k, v in guide["services"]["backend"].items() if k not in SLOT_ONLY}
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
