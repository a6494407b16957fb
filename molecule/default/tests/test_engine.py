"""The Docker engine that roles/docker_engine installed."""

import json


def test_docker_service_is_active_and_enabled(host):
    docker = host.service("docker")
    assert docker.is_running, "the docker service should be running"
    assert docker.is_enabled, "the docker service should start at boot"


def test_compose_is_v2(sh):
    version = sh("docker compose version --short").strip()
    assert version.lstrip("v").startswith("2."), f"expected Compose v2, got {version!r}"


def test_buildx_is_installed(sh):
    assert "buildx" in sh("docker buildx version"), "docker buildx should answer"


def test_daemon_json_rotates_logs_and_live_restores(host):
    config = host.file("/etc/docker/daemon.json")
    assert config.mode == 0o644
    daemon = json.loads(config.content_string)
    assert daemon["log-driver"] == "json-file"
    assert daemon["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert daemon["live-restore"] is True
