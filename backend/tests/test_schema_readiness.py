"""The "schema" check of /readyz: behind the head, at an unknown revision, and quiet logs.
(Ahead of the head: tests/test_next_release.py; not migrated: tests/test_api.py.)"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from psycopg import sql

from src.app import create_app
from src.database.migrations import alembic_config, upgrade_to_head
from src.database.session import create_engine_from_settings
from tests.conftest import Database


def readyz(database: Database, hf_home: Path) -> tuple[int, Any]:
    """GET /readyz (no models configured: only the database counts)."""
    with TestClient(create_app(database.settings(hf_home))) as client:
        response = client.get("/readyz")
    return response.status_code, response.json()


def test_readyz_is_unready_behind_the_head(empty_database: Database, tmp_path: Path) -> None:
    engine = create_engine_from_settings(empty_database.settings(tmp_path))
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0001")
    finally:
        engine.dispose()
    status, body = readyz(empty_database, tmp_path)
    assert (status, body["checks"]["schema"]) == (503, "at 0001, head is 0003"), body


def test_readyz_is_unready_at_a_revision_it_cannot_trace(
    empty_database: Database, tmp_path: Path
) -> None:
    engine = create_engine_from_settings(empty_database.settings(tmp_path))
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()
    empty_database.cluster.execute(
        sql.SQL("UPDATE alembic_version SET version_num = {}").format(sql.Literal("0009")),
        empty_database.name,
    )
    status, body = readyz(empty_database, tmp_path)
    assert (status, body["checks"]["schema"]) == (
        503,
        "at 0009, head is 0003; 0009 is not one of this release's migrations and "
        "schema_history does not lead from it back to 0003",
    ), body


def test_readyz_logs_nothing_from_alembic(
    seeded_database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(seeded_database.settings(tmp_path))) as client:
        caplog.set_level(logging.INFO)
        caplog.clear()
        for _ in range(3):
            assert client.get("/readyz").status_code == 200
        records = [(r.name, r.getMessage()) for r in caplog.records]
    assert ("src.api.health", "readyz: ready") in records, f"the app's log: {records}"
    alembic = [record for record in records if record[0].startswith("alembic")]
    assert alembic == [], f"/readyz should not log Alembic lines, got {alembic}"
