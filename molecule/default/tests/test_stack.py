"""The running stack: health, network exposure, database."""

import ast
import json

import pytest
from conftest import REPO

MIGRATIONS = REPO / "backend" / "migrations" / "versions"


@pytest.mark.parametrize("container", ["nica-postgres-1", "nica-proxy-1", "serving"])
def test_container_is_healthy(sh, container, serving):
    container = serving if container == "serving" else container
    health = sh(f"docker inspect -f '{{{{.State.Health.Status}}}}' {container}").strip()
    assert health == "healthy", f"{container} is {health}, expected healthy"


def test_postgres_port_is_not_published(sh):
    inspect = json.loads(sh("docker inspect nica-postgres-1"))[0]
    assert not inspect["HostConfig"]["PortBindings"], "PostgreSQL must not be published on the host"
    assert sh("docker port nica-postgres-1").strip() == ""


def test_readyz_answers_200_from_the_host_and_shows_its_checks_only_inside(http_get, sh):
    status, body = http_get("http://127.0.0.1:8000/readyz")
    assert status == 200, f"/readyz answered {status}: {body}"
    # Through the proxy, what any client may know: ready or not, no checks.
    assert body == {"status": "ready"}, f"the proxy's /readyz shows more than the status: {body}"
    body = json.loads(sh("docker exec nica-proxy-1 curl -fsS http://127.0.0.1:8000/__nica/readyz"))
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["schema"] == "ok"
    assert body["checks"]["models"] == "ok"


def test_healthz_answers_200_from_the_host(http_get):
    status, body = http_get("http://127.0.0.1:8000/healthz")
    assert (status, body) == (200, {"status": "ok"})


def checkout_revisions() -> dict[str, str | None]:
    """revision -> down_revision of each migration file in the checkout (what was deployed)."""
    revisions: dict[str, str | None] = {}
    for path in sorted(MIGRATIONS.glob("*.py")):
        values = {}
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and isinstance(node.value, ast.Constant):
                        values[target.id] = node.value.value
        assert "revision" in values, f"{path.name} sets no revision"
        revisions[values["revision"]] = values.get("down_revision")
    return revisions


def test_schema_is_at_the_checkout_s_latest_migration(psql):
    revisions = checkout_revisions()
    heads = sorted(set(revisions) - set(revisions.values()))
    assert len(revisions) >= 2 and len(heads) == 1, (
        f"expected one chain of migrations in {MIGRATIONS}, got heads {heads} of {revisions}"
    )
    assert heads[0] == max(revisions), f"the chain ends at {heads[0]}, not at {max(revisions)}"
    deployed = psql("SELECT version_num FROM alembic_version")
    assert deployed == [[heads[0]]], (
        f"the database is at {deployed}, expected the checkout's latest migration {heads[0]}"
    )


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
