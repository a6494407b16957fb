"""Readiness checks: database reachable, schema at the migration head, models cached and loaded."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from src.database.migrations import current_revision
from src.database.session import error_reason
from src.embeddings.registry import EmbeddingModels
from src.model_cache.lock import locked_reason
from src.model_cache.manifest import ModelCacheError, verify
from src.model_cache.spec import ModelSpec
from src.settings import Settings

OK = "ok"
STATEMENT_TIMEOUT_MS = 2000


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(value == OK for value in self.checks.values())


def check_database(engine: Engine, settings: Settings, head: str) -> tuple[str, str]:
    """(database, schema) check results."""
    try:
        with engine.connect() as connection:
            connection.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
            connection.execute(text("SELECT 1"))
            try:
                current = current_revision(connection)
            except SQLAlchemyError as error:
                return OK, f"cannot read alembic_version: {error_reason(error, settings)}"
    except SQLAlchemyError as error:
        return error_reason(error, settings), "not checked: the database is unavailable"
    if current == head:
        return OK, OK
    if current is None:
        return OK, f"not migrated, head is {head}"
    return OK, f"at {current}, head is {head}"


def check_models(hf_home: Path, specs: Iterable[ModelSpec]) -> str:
    problems = []
    for spec in specs:
        try:
            verify(hf_home, spec)
        except ModelCacheError as error:
            problems.append(f"{spec}: {error}")
    return "; ".join(problems) if problems else OK


def check_all(
    engine: Engine, settings: Settings, head: str, embedding_models: EmbeddingModels
) -> Readiness:
    database, schema = check_database(engine, settings, head)
    models = locked_reason(settings.hf_home, settings.hf_cache_marker) or check_models(
        settings.hf_home, settings.models
    )
    return Readiness(
        {
            "database": database,
            "schema": schema,
            "models": models,
            "embeddings": embedding_models.status(),
        }
    )
