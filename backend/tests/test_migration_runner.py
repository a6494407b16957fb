"""The migration runner: the backward_compatible flag, schema_history, the migration lock."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic import command

from src.database.migrations import alembic_config, upgrade_to_head
from src.database.session import create_engine_from_settings
from tests.conftest import Database
from tests.support.postgres import PostgresCluster
from tests.support.releases import backend_copy, migrations_copy
from tests.support.runners import run_db_cli, start_db_cli_on_signal

HISTORY_QUERY = (
    "SELECT revision, down_revision, backward_compatible, applied_at IS NOT NULL"
    " FROM schema_history ORDER BY revision"
)
FAILING_MIGRATION = '''"""Fail on purpose (test only)."""

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
backward_compatible = True


def upgrade() -> None:
    raise RuntimeError("this migration fails on purpose")


def downgrade() -> None:
    pass
'''
SLOW_MIGRATION = '''"""Take a second (test only)."""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
backward_compatible = True


def upgrade() -> None:
    op.execute("SELECT pg_sleep(1)")


def downgrade() -> None:
    pass
'''


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def new_revision(migrations_dir: Path) -> Path:
    """`alembic revision -m "add a thing"` (rev 0004) in `migrations_dir`; the new file."""
    script = command.revision(
        alembic_config(migrations_dir=migrations_dir), message="add a thing", rev_id="0004"
    )
    assert script is not None and not isinstance(script, list)
    return Path(script.path)


def upgrade_by_alembic_alone(database: Database, tmp_path: Path) -> None:
    """`alembic upgrade head` without the runner: a database migrated before schema_history."""
    engine = create_engine_from_settings(database.settings(tmp_path))
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
    finally:
        engine.dispose()


# ---- the backward_compatible flag


def test_new_migration_files_must_set_the_flag(tmp_path: Path) -> None:
    text = new_revision(migrations_copy(tmp_path)).read_text()
    assert "\nbackward_compatible: bool = ...\n" in text, (
        f"script.py.mako should write `backward_compatible: bool = ...`, got:\n{text}"
    )
    assert "Split a breaking change" in text, "the expand/contract rule should be explained"


def test_migrate_refuses_a_migration_without_the_flag_naming_it(
    empty_database: Database, tmp_path: Path
) -> None:
    release = backend_copy(tmp_path / "backend")
    new_revision(release / "migrations")
    result = run_db_cli("migrate", empty_database.url, empty_database.password_file, release)
    assert (result.returncode, lines(result.stderr)) == (
        1,
        [
            "error: migrate failed: migration 0004 (migrations/versions/0004_add_a_thing.py) "
            "does not set backward_compatible: set `backward_compatible = True` in it if the "
            "previous release keeps working with it applied (expand), "
            "`backward_compatible = False` if not (contract)"
        ],
    ), f"expected one line naming 0004 and its file, got: {result.stderr}"


def test_a_refused_migration_run_applies_nothing(empty_database: Database, tmp_path: Path) -> None:
    release = backend_copy(tmp_path / "backend")
    new_revision(release / "migrations")
    run_db_cli("migrate", empty_database.url, empty_database.password_file, release)
    tables = empty_database.cluster.query(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", empty_database.name
    )
    assert tables == [], f"nothing should be migrated, found tables {tables}"


# ---- schema_history


def test_migrate_records_every_revision_in_schema_history(
    empty_database: Database, tmp_path: Path
) -> None:
    engine = create_engine_from_settings(empty_database.settings(tmp_path))
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()
    rows = empty_database.cluster.query(HISTORY_QUERY, empty_database.name)
    assert rows == [
        ("0001", None, True, True),
        ("0002", "0001", True, True),
        ("0003", "0002", True, True),
    ], f"expected 0001 to 0003, backward compatible, applied now; got {rows}"


def test_migrate_records_the_history_of_a_database_migrated_before_it(
    empty_database: Database, tmp_path: Path
) -> None:
    upgrade_by_alembic_alone(empty_database, tmp_path)
    engine = create_engine_from_settings(empty_database.settings(tmp_path))
    try:
        result = upgrade_to_head(engine)
    finally:
        engine.dispose()
    rows = empty_database.cluster.query(HISTORY_QUERY, empty_database.name)
    assert (result.applied, rows) == (
        0,
        [("0001", None, True, False), ("0002", "0001", True, False), ("0003", "0002", True, False)],
    ), f"expected rows for 0001 to 0003 without applied_at and nothing applied; got {rows}"


def test_a_failed_migration_leaves_no_history(empty_database: Database, tmp_path: Path) -> None:
    upgrade_by_alembic_alone(empty_database, tmp_path)
    migrations = migrations_copy(tmp_path)
    (migrations / "versions" / "0004_fails.py").write_text(FAILING_MIGRATION)
    engine = create_engine_from_settings(empty_database.settings(tmp_path))
    try:
        with pytest.raises(RuntimeError, match="fails on purpose"):
            upgrade_to_head(engine, migrations)
    finally:
        engine.dispose()
    found = empty_database.cluster.query(
        "SELECT to_regclass('schema_history') IS NOT NULL", empty_database.name
    )
    assert found == [(False,)], "schema_history is written in the upgrade's own transaction"


# ---- two runs at once


@dataclass(frozen=True)
class Race:
    results: list[subprocess.CompletedProcess[str]]
    version: list[tuple[object, ...]]
    collections: list[tuple[object, ...]]
    documents: list[tuple[object, ...]]


@pytest.fixture(scope="module")
def race(
    pg_cluster: PostgresCluster, app_password_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Race:
    """Two `migrate-seed` runs on a new database, released at the same moment. The release is
    this one plus a last migration that takes a second, so the runs surely overlap: without
    the lock both would start applying 0001."""
    release = backend_copy(tmp_path_factory.mktemp("slow-release") / "backend")
    (release / "migrations" / "versions" / "0004_slow.py").write_text(SLOW_MIGRATION)
    name = pg_cluster.create_database()
    url = pg_cluster.app_url(name)
    runs = [
        start_db_cli_on_signal("migrate-seed", url, app_password_file, release) for _ in range(2)
    ]
    for run in runs:
        assert run.stderr is not None and run.stderr.readline() == "waiting\n"
    for run in runs:
        assert run.stdin is not None
        run.stdin.write("go\n")
        run.stdin.flush()
    results = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(run.args, run.returncode, stdout, stderr))
    return Race(
        results=results,
        version=pg_cluster.query("SELECT version_num FROM alembic_version", name),
        collections=pg_cluster.query("SELECT name FROM collections", name),
        documents=pg_cluster.query("SELECT title FROM documents ORDER BY title", name),
    )


def test_concurrent_runs_both_succeed(race: Race) -> None:
    failures = [r.stderr for r in race.results if r.returncode != 0]
    assert failures == [], f"both runs should succeed, got: {failures}"


def test_concurrent_runs_apply_the_migrations_once(race: Race) -> None:
    migrate_lines = sorted(lines(r.stdout)[0] for r in race.results if r.stdout)
    assert migrate_lines == [
        "migrate: at head 0004 (0 migrations applied)",
        "migrate: at head 0004 (4 migrations applied)",
    ], f"exactly one run should apply the migrations, got {migrate_lines}"


def test_concurrent_runs_leave_the_schema_at_head(race: Race) -> None:
    assert race.version == [("0004",)], f"alembic_version: {race.version}"


def test_concurrent_runs_seed_each_row_once(race: Race) -> None:
    assert (race.collections, race.documents) == (
        [("default",)],
        [("Health checks",), ("Models",), ("Welcome",)],
    ), f"expected one seed: {race.collections}, {race.documents}"
