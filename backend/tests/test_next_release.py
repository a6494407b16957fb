"""The current release against a database migrated by the next ones (testing/next_release):
0004 is backward compatible, 0005 is not. /readyz, `compat`, `plan` and `migrate` of each.

One database goes through the stages in order (module fixture); each test checks one answer.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from src.app import create_app
from tests.conftest import Database
from tests.support.postgres import PostgresCluster
from tests.support.releases import COMPATIBLE, INCOMPATIBLE, backend_copy
from tests.support.runners import BACKEND_DIR, run_db_cli

AHEAD_COMPATIBLE = (
    "at 0004, ahead of this release's head 0003 by backward-compatible migration 0004"
)
AHEAD_INCOMPATIBLE = (
    "at 0005, ahead of this release's head 0003; migration 0005 is not backward compatible "
    "(its release must serve)"
)


@dataclass(frozen=True)
class Readyz:
    status_code: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Stages:
    """What each release answered at each stage (keys: "<release>@<database revision>")."""

    cli: dict[str, subprocess.CompletedProcess[str]]
    readyz: dict[str, Readyz]


def readyz(database: Database, hf_home: Path) -> Readyz:
    """GET /readyz of the current release (no models configured: only the database counts)."""
    with TestClient(create_app(database.settings(hf_home))) as client:
        response = client.get("/readyz")
    return Readyz(response.status_code, response.json())


@pytest.fixture(scope="module")
def stages(
    pg_cluster: PostgresCluster, app_password_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Stages:
    root = tmp_path_factory.mktemp("releases")
    releases = {
        "current": BACKEND_DIR,
        "next": backend_copy(root / "next", COMPATIBLE),
        "after-next": backend_copy(root / "after-next", COMPATIBLE, INCOMPATIBLE),
    }
    name = pg_cluster.create_database()
    database = Database(name, pg_cluster.app_url(name), app_password_file, pg_cluster)
    hf_home = tmp_path_factory.mktemp("hf-home")
    cli: dict[str, subprocess.CompletedProcess[str]] = {}

    def run(release: str, command: str, at: str) -> None:
        cli[f"{command} {release}@{at}"] = run_db_cli(
            command, database.url, app_password_file, releases[release]
        )

    run("after-next", "plan", "none")
    run("current", "migrate-seed", "none")
    run("after-next", "plan", "0003")
    run("next", "migrate", "0003")
    checks = {"0004": readyz(database, hf_home)}
    for command in ("compat", "plan", "migrate-seed"):
        run("current", command, "0004")
    run("after-next", "migrate", "0004")
    checks["0005"] = readyz(database, hf_home)
    for release in releases:
        run(release, "compat", "0005")
    run("current", "plan", "0005")
    run("current", "migrate", "0005")
    run("current", "seed", "0005")
    return Stages(cli, checks)


def result(stages: Stages, key: str) -> tuple[int, list[str], list[str]]:
    done = stages.cli[key]
    return done.returncode, done.stdout.splitlines(), done.stderr.splitlines()


def plan_of(stages: Stages, key: str) -> Any:
    code, out, err = result(stages, key)
    assert (code, len(out)) == (0, 1), (
        f"{key}: expected exit 0 and one line, got {code} {out} {err}"
    )
    return json.loads(out[0])


# ---- plan


def test_plan_on_an_empty_database_lists_every_migration(stages: Stages) -> None:
    assert plan_of(stages, "plan after-next@none") == {
        "current": None,
        "head": "0005",
        "pending": [
            {
                "revision": "0001",
                "backward_compatible": True,
                "doc": "Create collections and documents.",
            },
            {
                "revision": "0002",
                "backward_compatible": True,
                "doc": (
                    "Add the document embedding: vector, model id and dimension (all nullable)."
                ),
            },
            {
                "revision": "0003",
                "backward_compatible": True,
                "doc": (
                    "Add documents.embedding_vector (pgvector) with an HNSW cosine index; "
                    "filled from embedding."
                ),
            },
            {
                "revision": "0004",
                "backward_compatible": True,
                "doc": (
                    "Add documents.source, a nullable text column (test-only next release: expand)."
                ),
            },
            {
                "revision": "0005",
                "backward_compatible": False,
                "doc": (
                    "Rename documents.body to documents.content (test-only next release: contract)."
                ),
            },
        ],
    }


def test_plan_lists_the_next_migrations_with_their_flags(stages: Stages) -> None:
    plan = plan_of(stages, "plan after-next@0003")
    pending = [(p["revision"], p["backward_compatible"]) for p in plan["pending"]]
    assert (plan["current"], plan["head"], pending) == (
        "0003",
        "0005",
        [("0004", True), ("0005", False)],
    ), f"expected 0004 (compatible) and 0005 (not) pending, got {plan}"


def test_plan_of_the_current_release_ahead_compatibly_is_empty(stages: Stages) -> None:
    plan = plan_of(stages, "plan current@0004")
    assert plan == {"current": "0004", "head": "0003", "pending": []}


def test_plan_of_the_current_release_ahead_incompatibly_fails(stages: Stages) -> None:
    assert result(stages, "plan current@0005") == (
        1,
        [],
        [f"error: plan failed: {AHEAD_INCOMPATIBLE}"],
    )


# ---- at 0004: the current release serves


def test_readyz_is_ready_ahead_of_a_compatible_migration(stages: Stages) -> None:
    answer = stages.readyz["0004"]
    assert (answer.status_code, answer.body["status"], answer.body["checks"]["schema"]) == (
        200,
        "ready",
        f"ok: {AHEAD_COMPATIBLE}",
    ), f"expected ready ahead of 0003, got {answer}"


def test_compat_passes_ahead_of_a_compatible_migration(stages: Stages) -> None:
    assert result(stages, "compat current@0004") == (0, [f"compat: ok: {AHEAD_COMPATIBLE}"], [])


def test_migrate_seed_of_the_current_release_leaves_a_compatible_schema_as_is(
    stages: Stages,
) -> None:
    assert result(stages, "migrate-seed current@0004") == (
        0,
        [f"migrate: {AHEAD_COMPATIBLE} (0 migrations applied)", "seed: 0 rows added, 4 present"],
        [],
    )


# ---- at 0005: the current release does not serve


def test_readyz_is_unready_naming_the_incompatible_migration(stages: Stages) -> None:
    answer = stages.readyz["0005"]
    assert (answer.status_code, answer.body["status"], answer.body["checks"]["schema"]) == (
        503,
        "unready",
        AHEAD_INCOMPATIBLE,
    ), f"expected unready naming 0005, got {answer}"


def test_compat_fails_naming_the_incompatible_migration(stages: Stages) -> None:
    assert result(stages, "compat current@0005") == (
        1,
        [],
        [f"error: this release cannot serve the database: {AHEAD_INCOMPATIBLE}"],
    )


def test_compat_of_the_release_before_the_contract_fails_too(stages: Stages) -> None:
    assert result(stages, "compat next@0005") == (
        1,
        [],
        [
            "error: this release cannot serve the database: at 0005, ahead of this release's "
            "head 0004; migration 0005 is not backward compatible (its release must serve)"
        ],
    )


def test_compat_of_the_release_that_migrated_passes(stages: Stages) -> None:
    assert result(stages, "compat after-next@0005") == (
        0,
        ["compat: ok: at 0005, this release's head"],
        [],
    )


def test_migrate_of_the_current_release_refuses_an_incompatible_schema(stages: Stages) -> None:
    assert result(stages, "migrate current@0005") == (
        1,
        [],
        [f"error: migrate failed: {AHEAD_INCOMPATIBLE}"],
    )


def test_the_incompatible_migration_really_breaks_the_current_release(stages: Stages) -> None:
    code, _, err = result(stages, "seed current@0005")
    assert code == 1 and 'column "body"' in err[0], f"seeding should fail on body, got {err}"


# ---- the release that applies them


def test_next_release_applies_its_migration(stages: Stages) -> None:
    assert result(stages, "migrate next@0003") == (
        0,
        ["migrate: at head 0004 (1 migration applied)"],
        [],
    )


def test_release_after_next_applies_its_migration(stages: Stages) -> None:
    assert result(stages, "migrate after-next@0004") == (
        0,
        ["migrate: at head 0005 (1 migration applied)"],
        [],
    )
