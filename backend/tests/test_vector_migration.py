"""Migration 0003 (pgvector): existing rows keep their embedding and gain the vector without
re-embedding, the previous release's writes stay in step, downgrade and upgrade again, and a
database where pgvector cannot be created is refused in one line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from src.database.migrations import alembic_config
from src.database.session import create_engine_from_settings
from tests.conftest import Database
from tests.support.runners import run_db_cli

EMBEDDING = [0.6, 0.8, 0.0]
# As the previous release writes a document: the REAL[] column only.
OLD_RELEASE_INSERT = text(
    "INSERT INTO documents (collection_id, title, body, embedding, embedding_model, "
    "embedding_dim) VALUES (:collection, :title, 'text', :embedding, 'org/model', 3)"
)
VECTOR_OF = text("SELECT CAST(embedding_vector AS real[]) FROM documents WHERE title = :title")
SCHEMA_OBJECTS = text(
    "SELECT (SELECT count(*) FROM information_schema.columns "
    "        WHERE table_name = 'documents' AND column_name = 'embedding_vector'),"
    "       (SELECT count(*) FROM pg_indexes"
    "        WHERE indexname LIKE 'ix_documents_embedding_vector%'),"
    "       (SELECT count(*) FROM pg_trigger WHERE tgname = 'tg_documents_embedding_vector')"
)


@pytest.fixture
def engine(empty_database: Database, tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine_from_settings(empty_database.settings(tmp_path))
    try:
        yield engine
    finally:
        engine.dispose()


def migrate(engine: Engine, target: str, down: bool = False) -> None:
    with engine.begin() as connection:
        config = alembic_config(connection)
        (command.downgrade if down else command.upgrade)(config, target)


def add_old_style(connection: Connection, title: str) -> None:
    collection = connection.execute(
        text(
            "INSERT INTO collections (name) VALUES ('c') ON CONFLICT (name) DO UPDATE "
            "SET name = excluded.name RETURNING id"
        )
    ).scalar_one()
    connection.execute(
        OLD_RELEASE_INSERT, {"collection": collection, "title": title, "embedding": EMBEDDING}
    )


def vector_of(engine: Engine, title: str) -> object:
    with engine.connect() as connection:
        return connection.execute(VECTOR_OF, {"title": title}).scalar_one()


def test_upgrade_gives_existing_rows_their_vector(engine: Engine) -> None:
    migrate(engine, "0002")
    with engine.begin() as connection:
        add_old_style(connection, "before 0003")
    migrate(engine, "0003")
    assert vector_of(engine, "before 0003") == pytest.approx(EMBEDDING), (
        "the row stored before 0003 should get its embedding as vector"
    )


def test_the_previous_releases_writes_get_a_vector(engine: Engine) -> None:
    migrate(engine, "0003")
    with engine.begin() as connection:
        add_old_style(connection, "written by the old release")
        connection.execute(
            text("UPDATE documents SET embedding = :new WHERE title = :title"),
            {"new": [0.0, 0.0, 1.0], "title": "written by the old release"},
        )
    assert vector_of(engine, "written by the old release") == pytest.approx([0.0, 0.0, 1.0]), (
        "a REAL[] written or updated without the vector column should update the vector"
    )


def test_downgrade_removes_the_vector_and_keeps_the_embeddings(engine: Engine) -> None:
    migrate(engine, "0003")
    with engine.begin() as connection:
        add_old_style(connection, "kept")
    migrate(engine, "0002", down=True)
    with engine.connect() as connection:
        objects = connection.execute(SCHEMA_OBJECTS).one()
        embedding = connection.execute(
            text("SELECT embedding FROM documents WHERE title = 'kept'")
        ).scalar_one()
    assert tuple(objects) == (0, 0, 0), f"column, index, trigger left after downgrade: {objects}"
    assert embedding == pytest.approx(EMBEDDING), "the REAL[] embedding should survive"


def test_upgrade_after_a_downgrade_restores_column_index_and_trigger(engine: Engine) -> None:
    migrate(engine, "0003")
    migrate(engine, "0002", down=True)
    migrate(engine, "0003")
    with engine.connect() as connection:
        objects = connection.execute(SCHEMA_OBJECTS).one()
    assert tuple(objects) == (1, 1, 1), f"expected column, index and trigger, got {objects}"


def test_migrate_without_pgvector_rights_fails_in_one_line(empty_database: Database) -> None:
    name = empty_database.cluster.create_database(template="template0")  # no extension in it
    url = empty_database.cluster.app_url(name)
    result = run_db_cli("migrate", url, empty_database.password_file)
    assert (result.returncode, result.stderr.splitlines()) == (
        1,
        [
            "error: migrate failed: migration 0003 needs the pgvector extension in this database "
            "and the database user may not create it: run `CREATE EXTENSION vector;` in it once "
            "as a superuser"
        ],
    ), f"expected one line saying how to get pgvector, got: {result.stderr}"
