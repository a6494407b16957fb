"""Readiness checks: database reachable, schema servable by this release, models cached and
loaded, and this worker warmed up (src.warmup).

/readyz asks CachedReadiness: the checks run on an engine of their own (one connection, never
one of the request pool), at most once per MAX_AGE_S, one run at a time; concurrent callers
share a result, so a flood of /readyz costs one check a second and starves no /v1 request.

Each check is a Check: whether it passes and the text /readyz shows under its name. The schema
passes at this release's migration head ("ok") and ahead of it by backward-compatible
migrations only ("ok: at 0003, ahead of ..."; the rule is src.database.compat's).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from src import worker_readiness
from src.database.compat import OK, serving_status
from src.database.migrations import ReleaseSchema, release_schema
from src.database.session import error_reason
from src.embeddings.registry import EmbeddingModels
from src.model_cache.lock import locked_reason
from src.model_cache.manifest import ModelCacheError, verify
from src.model_spec import ModelSpec
from src.settings import Settings
from src.warmup import Warmup

STATEMENT_TIMEOUT_MS = 2000
MAX_AGE_S = 1.0  # the oldest result /readyz answers with, counted from the check's start


@dataclass(frozen=True)
class Check:
    passed: bool
    text: str

    @classmethod
    def from_text(cls, value: str) -> Check:
        """For the checks whose only passing text is "ok" (database, models, embeddings)."""
        return cls(value == OK, value)


@dataclass(frozen=True)
class Readiness:
    results: dict[str, Check]

    @property
    def ready(self) -> bool:
        return all(check.passed for check in self.results.values())

    @property
    def checks(self) -> dict[str, str]:
        """Every check's text by name: the "checks" object of /readyz."""
        return {name: check.text for name, check in self.results.items()}

    @property
    def failing(self) -> dict[str, str]:
        return {name: check.text for name, check in self.results.items() if not check.passed}


def check_database(
    engine: Engine, settings: Settings, release: ReleaseSchema
) -> tuple[Check, Check]:
    """(database, schema) checks."""
    try:
        with engine.connect() as connection:
            connection.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
            connection.execute(text("SELECT 1"))
            try:
                status = serving_status(connection, release.head, release.revisions)
            except SQLAlchemyError as error:
                reason = error_reason(error, settings)
                return Check(True, OK), Check(False, f"cannot read the schema's revision: {reason}")
    except SQLAlchemyError as error:
        return (
            Check(False, error_reason(error, settings)),
            Check(False, "not checked: the database is unavailable"),
        )
    return Check(True, OK), Check(status.serves, status.check)


def check_models(hf_home: Path, specs: Iterable[ModelSpec]) -> str:
    problems = []
    for spec in specs:
        try:
            verify(hf_home, spec)
        except ModelCacheError as error:
            problems.append(f"{spec}: {error}")
    return "; ".join(problems) if problems else OK


def check_all(
    engine: Engine,
    settings: Settings,
    release: ReleaseSchema,
    embedding_models: EmbeddingModels,
    warmup: Warmup,
) -> Readiness:
    database, schema = check_database(engine, settings, release)
    models = locked_reason(settings.hf_home, settings.hf_cache_marker) or check_models(
        settings.hf_home, settings.models
    )
    embeddings = embedding_models.status()
    if embeddings == OK:  # this worker's models; then every other worker's (UVICORN_WORKERS)
        embeddings = worker_readiness.status(settings.uvicorn_workers)
    return Readiness(
        {
            "database": database,
            "schema": schema,
            "models": Check.from_text(models),
            "embeddings": Check.from_text(embeddings),
            "warmup": Check(*warmup.check),
        }
    )


class CachedReadiness:
    """check_all, at most MAX_AGE_S old, on `engine`: the readiness checks' own (made with
    one connection by the app), so they never wait for, or hold, a request's connection."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        embedding_models: EmbeddingModels,
        warmup: Warmup,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.embedding_models = embedding_models
        self.warmup = warmup
        self.max_age_s = max_age_s
        self._lock = anyio.Lock()
        # Its own thread limit: a check never waits for the threads /v1 requests use.
        self._limiter = anyio.CapacityLimiter(1)
        self._last: tuple[float, Readiness] | None = None

    async def get(self) -> Readiness:
        async with self._lock:  # one check at a time; the others wait here, holding nothing
            if self._last is not None and time.monotonic() - self._last[0] <= self.max_age_s:
                return self._last[1]
            started = time.monotonic()
            readiness = await anyio.to_thread.run_sync(self._check, limiter=self._limiter)
            self._last = (started, readiness)
            return readiness

    def _check(self) -> Readiness:
        return check_all(
            self.engine, self.settings, release_schema(), self.embedding_models, self.warmup
        )
