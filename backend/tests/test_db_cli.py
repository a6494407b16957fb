"""`python -m src.database.cli`: migrate-seed is idempotent; failures are one safe line."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from src.database.migrations import head_revision
from tests.conftest import Database
from tests.support.net import closed_port
from tests.support.postgres import PostgresCluster
from tests.support.runners import run_db_cli, run_python

ROWS_QUERY = """
    SELECT c.id, c.name, c.description, c.created_at, d.id, d.title, d.body, d.created_at
    FROM collections c LEFT JOIN documents d ON d.collection_id = c.id
    ORDER BY c.id, d.id
"""


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class TwoRuns:
    first: subprocess.CompletedProcess[str]
    rows_after_first: list[tuple[object, ...]]
    second: subprocess.CompletedProcess[str]
    rows_after_second: list[tuple[object, ...]]
    version: list[tuple[object, ...]]


@pytest.fixture(scope="module")
def two_runs(pg_cluster: PostgresCluster, app_password_file: Path) -> TwoRuns:
    """migrate-seed twice on a new, empty database."""
    name = pg_cluster.create_database()
    url = pg_cluster.app_url(name)
    first = run_db_cli("migrate-seed", url, app_password_file)
    rows_after_first = pg_cluster.query(ROWS_QUERY, name)
    second = run_db_cli("migrate-seed", url, app_password_file)
    rows_after_second = pg_cluster.query(ROWS_QUERY, name)
    version = pg_cluster.query("SELECT version_num FROM alembic_version", name)
    return TwoRuns(first, rows_after_first, second, rows_after_second, version)


def test_first_run_migrates_and_seeds(two_runs: TwoRuns) -> None:
    assert two_runs.first.returncode == 0, f"first run failed: {two_runs.first.stderr}"
    assert lines(two_runs.first.stdout) == [
        f"migrate: at head {head_revision()} (3 migrations applied)",
        "seed: 4 rows added, 4 present",
    ]


def test_first_run_seeds_default_collection_with_three_documents(two_runs: TwoRuns) -> None:
    names = {row[1] for row in two_runs.rows_after_first}
    titles = [row[5] for row in two_runs.rows_after_first]
    assert names == {"default"}, f"expected only the 'default' collection, got {names}"
    assert len(titles) == 3, f"expected 3 sample documents, got {titles}"


def test_second_run_changes_nothing(two_runs: TwoRuns) -> None:
    assert two_runs.second.returncode == 0, f"second run failed: {two_runs.second.stderr}"
    assert lines(two_runs.second.stdout) == [
        f"migrate: at head {head_revision()} (0 migrations applied)",
        "seed: 0 rows added, 4 present",
    ]
    assert two_runs.rows_after_second == two_runs.rows_after_first, "rows should be identical"


def test_alembic_version_is_head(two_runs: TwoRuns) -> None:
    assert two_runs.version == [(head_revision(),)], f"alembic_version: {two_runs.version}"


def test_current_prints_the_revision(seeded_database: Database) -> None:
    result = run_db_cli("current", seeded_database.url, seeded_database.password_file)
    head = head_revision()
    assert (result.returncode, lines(result.stdout)) == (0, [f"current: {head} (head {head})"])


def test_current_on_empty_database(empty_database: Database) -> None:
    result = run_db_cli("current", empty_database.url, empty_database.password_file)
    assert (result.returncode, lines(result.stdout)) == (
        0,
        [f"current: none (head {head_revision()})"],
    ), f"expected exit 0 and 'current: none', got {result.returncode}: {result.stderr}"


def test_unreachable_database_is_one_line_without_password(app_password_file: Path) -> None:
    port = closed_port()
    url = f"postgresql+psycopg://app@127.0.0.1:{port}/app"
    result = run_db_cli("migrate-seed", url, app_password_file)
    assert result.returncode == 1, f"expected exit 1, got {result.returncode}"
    errors = lines(result.stderr)
    prefix = (
        f"error: cannot reach the database at postgresql+psycopg://app:***@127.0.0.1:{port}/app: "
    )
    assert len(errors) == 1 and errors[0].startswith(prefix), (
        f"expected {prefix!r}..., got {errors}"
    )
    password = app_password_file.read_text().strip()
    assert password not in result.stdout + result.stderr, "the password must not be printed"


def test_wrong_password_is_one_line_without_password(
    empty_database: Database, tmp_path: Path
) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text("wrong-password-xyz")
    result = run_db_cli("migrate", empty_database.url, password_file)
    assert result.returncode == 1, f"expected exit 1, got {result.returncode}"
    safe_url = empty_database.url.replace("://app@", "://app:***@")
    errors = lines(result.stderr)
    assert (
        len(errors) == 1
        and errors[0].startswith(f"error: cannot reach the database at {safe_url}: ")
        and errors[0].endswith('password authentication failed for user "app"')
    ), f"expected one line naming the URL and the failed password authentication, got {errors}"
    assert "wrong-password-xyz" not in result.stdout + result.stderr, "password printed"


def test_bad_usage_exits_2(seeded_database: Database) -> None:
    result = run_db_cli("frobnicate", seeded_database.url, seeded_database.password_file)
    assert result.returncode == 2, f"an unknown command should exit 2, got {result.returncode}"


def test_missing_configuration_exits_2_naming_the_variable() -> None:
    result = run_python(["-m", "src.database.cli", "migrate"], env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2, f"expected exit 2, got {result.returncode}"
    assert lines(result.stderr) == [
        "error: DATABASE_URL is not set (e.g. postgresql+psycopg://app@postgres:5432/app)"
    ]
