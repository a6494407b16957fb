"""The running stack: health, network exposure, database."""

import json

import pytest


@pytest.mark.parametrize("container", ["nica-postgres-1", "nica-proxy-1", "serving"])
def test_container_is_healthy(sh, container, serving):
    container = serving if container == "serving" else container
    health = sh(f"docker inspect -f '{{{{.State.Health.Status}}}}' {container}").strip()
    assert health == "healthy", f"{container} is {health}, expected healthy"


def test_postgres_port_is_not_published(sh):
    inspect = json.loads(sh("docker inspect nica-postgres-1"))[0]
    assert not inspect["HostConfig"]["PortBindings"], "PostgreSQL must not be published on the host"
    assert sh("docker port nica-postgres-1").strip() == ""


def test_readyz_answers_200_from_the_host(http_get):
    status, body = http_get("http://127.0.0.1:8000/readyz")
    assert status == 200, f"/readyz answered {status}: {body}"
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["schema"] == "ok"
    assert body["checks"]["models"] == "ok"


def test_healthz_answers_200_from_the_host(http_get):
    status, body = http_get("http://127.0.0.1:8000/healthz")
    assert (status, body) == (200, {"status": "ok"})


def test_schema_is_at_the_migration_head(sh, psql, serving):
    current = sh(f"docker exec {serving} python -m src.database.cli current").strip()
    # "current: 0001 (head 0001)"
    words = current.replace("(", "").replace(")", "").split()
    assert words[0] == "current:" and words[1] == words[3], f"schema not at head: {current!r}"
    assert psql("SELECT version_num FROM alembic_version") == [[words[3]]]


def test_seed_rows_are_present(psql):
    collections = [row[0] for row in psql("SELECT name FROM collections")]
    assert "default" in collections, f"seed collection missing; have {collections}"
    (count,) = psql(
        "SELECT count(*) FROM documents d JOIN collections c ON c.id = d.collection_id "
        "WHERE c.name = 'default'"
    )[0]
    assert int(count) >= 3, f"expected the seeded documents, found {count}"


def test_backend_runs_as_appuser_with_a_read_only_root(sh, serving):
    inspect = json.loads(sh(f"docker inspect {serving}"))[0]
    assert inspect["HostConfig"]["ReadonlyRootfs"] is True
    assert sh(f"docker exec {serving} id -u").strip() == "10001"
