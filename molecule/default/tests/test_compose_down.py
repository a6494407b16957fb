"""An operator runs `docker compose down -v` and deploys again: the database rows, the
stored documents and the cached models survive (both volumes are external to the compose
project), and the deploy takes the full path (the fast path sees the containers gone) and
brings everything back. This redeploy also puts the inventory's token back after the
previous story's failed attempts. test_documents checks the stored document at the end."""

from __future__ import annotations

import json
from typing import Any

import pytest
from runs import FULL_PATH_TASK, STOPPED_EARLY, Run, deploy, http, sh

VOLUMES = ["hf-cache", "nica_pg-data"]
MARKER = "side-effect-marker"


def created(host: Any) -> dict[str, str]:
    """Each volume's creation time (a recreated volume has a new one)."""
    found = json.loads(sh(host, "docker volume inspect " + " ".join(VOLUMES)))
    return {volume["Name"]: volume["CreatedAt"] for volume in found}


@pytest.fixture(scope="module")
def redeploy(host: Any) -> dict[str, Any]:
    status, _ = http(
        host,
        "http://127.0.0.1:8000/v1/documents",
        {
            "title": MARKER,
            "text": "This marker document was stored before docker compose down"
            " and must survive redeploys.",
        },
    )
    assert status == 201, f"storing the marker document answered {status}"
    sh(
        host,
        "docker exec nica-postgres-1 psql -v ON_ERROR_STOP=1 -h /var/run/postgresql -U app -d app"
        ' -c "INSERT INTO collections (name, description)'
        " VALUES ('side-effect-marker', 'written before docker compose down')\"",
    )
    before = created(host)
    sh(host, "cd /opt/nica/compose && docker compose down -v")
    run: Run = deploy("compose-down-redeploy")
    states = sh(host, "docker ps -a --format '{{.Names}} {{.State}}'").split("\n")
    return {"run": run, "before": before, "after": created(host), "states": states}


def test_the_redeploy_succeeds_and_takes_the_full_path(redeploy):
    run = redeploy["run"]
    assert run.rc == 0, str(run)
    assert STOPPED_EARLY not in run.output, f"the fast path skipped removed containers: {run}"
    assert run.ran(FULL_PATH_TASK), f"the redeploy did not run the roles: {run}"


def test_the_redeploy_brought_the_stack_back(redeploy):
    running = {line.split()[0] for line in redeploy["states"] if line.endswith(" running")}
    assert {"nica-proxy-1", "nica-postgres-1"} <= running, redeploy["states"]
    assert running & {"nica-backend-blue-1", "nica-backend-green-1"}, redeploy["states"]


def test_compose_down_v_kept_both_volumes(redeploy):
    before, after = redeploy["before"], redeploy["after"]
    assert set(before) == set(VOLUMES) and all(before.values()), (
        f"a volume was missing before: {before}"
    )
    assert after == before, (
        f"docker compose down -v removed or recreated a volume: created {before} before,"
        f" {after} after the redeploy"
    )


def test_rows_survive_compose_down_and_redeploy(redeploy, psql):
    rows = psql("SELECT name FROM collections WHERE name = 'side-effect-marker'")
    assert rows == [[MARKER]], "the row written before `docker compose down` is gone"
