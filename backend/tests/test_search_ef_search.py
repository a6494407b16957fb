"""SEARCH_EF_SEARCH reaches PostgreSQL: GET /v1/search sets pgvector's hnsw.ef_search to
the configured value in the transaction that runs the index scan (what PostgreSQL is sent
is read off the real connection; no part of the app is replaced)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from src.app import create_app
from src.settings import DEFAULT_SEARCH_EF_SEARCH, Settings
from tests.conftest import Prefetched
from tests.support.embeddings import cached_load, readyz_after_loading
from tests.support.postgres import PostgresCluster
from tests.test_documents import seeded_copy

EF_SEARCH = 123  # not the default, so a value that never reaches PostgreSQL shows
assert EF_SEARCH != DEFAULT_SEARCH_EF_SEARCH


@pytest.fixture(scope="module")
def settings(
    pg_cluster: PostgresCluster, app_password_file: Path, prefetched: Prefetched
) -> Settings:
    base = seeded_copy(pg_cluster, app_password_file, prefetched.hf_home)
    return dataclasses.replace(base, search_ef_search=EF_SEARCH)


@pytest.fixture
def sent() -> Iterator[list[tuple[str, Any]]]:
    """Every statement and its parameters, as the app sends them to PostgreSQL."""
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def test_search_sets_hnsw_ef_search_to_the_setting(
    settings: Settings, sent: list[tuple[str, Any]]
) -> None:
    with TestClient(create_app(settings, load_encoder=cached_load)) as client:
        readyz_after_loading(client)
        sent.clear()
        response = client.get("/v1/search", params={"q": "a kettle for tea", "k": 3})
    assert response.status_code == 200, response.text
    values = [
        str(dict(parameters).get("ef"))
        for statement, parameters in sent
        if "hnsw.ef_search" in statement and parameters
    ]
    assert values == [str(EF_SEARCH)], (
        f"expected one hnsw.ef_search = {EF_SEARCH} sent with the search, got {values}"
    )
