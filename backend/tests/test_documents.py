"""POST /v1/documents, GET /v1/search and the start-up backfill, on a database of their own
(documents are added here, so the session's seeded database stays as the seed left it)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from src.app import create_app
from src.database.seed import SAMPLE_DOCUMENTS
from src.settings import Settings
from tests.conftest import Database, Prefetched
from tests.support.database import migrated_and_seeded
from tests.support.embeddings import (
    app_while_loading,
    cached_load,
    readyz_after_loading,
    text_of_length,
)
from tests.support.fake_hub import PUBLIC_REPO
from tests.support.postgres import PostgresCluster

DIMENSION = 384
SEED_TITLES = {title for title, _ in SAMPLE_DOCUMENTS}
BACKFILL_LOGGER = "src.backfill"
MAX_CHARS = 20000  # EMBEDDINGS_MAX_INPUT_CHARS' default


def seeded_copy(cluster: PostgresCluster, password_file: Path, hf_home: Path) -> Settings:
    """A new database, migrated and seeded like `migrate-seed` does (no embeddings yet)."""
    name = cluster.create_database()
    database = Database(name, cluster.app_url(name), password_file, cluster)
    settings = database.settings(hf_home, models=PUBLIC_REPO)
    migrated_and_seeded(settings)
    return settings


@pytest.fixture(scope="module")
def settings(
    pg_cluster: PostgresCluster, app_password_file: Path, prefetched: Prefetched
) -> Settings:
    return seeded_copy(pg_cluster, app_password_file, prefetched.hf_home)


def wait_for_backfill(caplog: pytest.LogCaptureFixture, timeout: float = 30) -> str:
    """The backfill's log line, once it is logged."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [r.getMessage() for r in caplog.records if r.name == BACKFILL_LOGGER]
        if lines:
            return lines[0]
        time.sleep(0.05)
    raise AssertionError(f"no backfill line logged in {timeout} s: {caplog.messages}")


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    """The app with all-MiniLM-L6-v2 loaded and the seed documents backfilled."""
    with TestClient(create_app(settings, load_encoder=cached_load)) as client:
        readyz_after_loading(client)
        deadline = time.monotonic() + 30
        while len(search(client, "anything", k=50).json()["data"]) < len(SEED_TITLES):
            assert time.monotonic() < deadline, "the seed documents were not backfilled"
            time.sleep(0.05)
        yield client


def add(client: httpx2.Client, text: str, **fields: Any) -> httpx2.Response:
    return client.post("/v1/documents", json={"text": text, **fields})


def search(client: httpx2.Client, q: str, **params: Any) -> httpx2.Response:
    return client.get("/v1/search", params={"q": q, **params})


def hits(response: httpx2.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, f"expected 200, got {response.status_code}: {response.text}"
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def detail(response: httpx2.Response) -> tuple[int, Any]:
    """Status and message of an error in the OpenAI shape."""
    return response.status_code, response.json()["error"]["message"]


# ---- POST /v1/documents


def test_a_stored_document_is_returned_with_its_embedding_model(client: TestClient) -> None:
    response = add(client, "Giraffes have long necks.", title="Giraffes")
    assert response.status_code == 201, f"expected 201, got {response.status_code}"
    body = response.json()
    fields = {key: body[key] for key in ("collection", "title", "model", "dim")}
    assert fields == {
        "collection": "default",
        "title": "Giraffes",
        "model": PUBLIC_REPO,
        "dim": DIMENSION,
    }
    assert isinstance(body["id"], int) and body["created_at"], f"id/created_at missing: {body}"


def test_the_title_defaults_to_the_first_line(client: TestClient) -> None:
    response = add(client, "Penguins cannot fly.\nThey swim instead.")
    assert response.json()["title"] == "Penguins cannot fly."


def test_a_duplicate_title_is_409(client: TestClient) -> None:
    add(client, "first text", title="Twice")
    assert detail(add(client, "second text", title="Twice")) == (
        409,
        "collection 'default' already has a document titled 'Twice'",
    )


@pytest.mark.parametrize("text", ["", "  \n "], ids=["empty", "blank"])
def test_empty_text_is_422(client: TestClient, text: str) -> None:
    assert detail(add(client, text)) == (422, "text is empty: a document needs some text")


def test_unknown_model_is_404_naming_the_available_ones(client: TestClient) -> None:
    assert detail(add(client, "hello", model="org/other")) == (
        404,
        f"model 'org/other' not found; available models: {PUBLIC_REPO}",
    )


def test_unknown_collection_is_404_naming_it(client: TestClient) -> None:
    assert detail(add(client, "hello", collection="nope")) == (404, "collection 'nope' not found")


def test_a_text_of_the_character_limit_is_stored(client: TestClient) -> None:
    response = add(client, text_of_length(MAX_CHARS), title="Long")
    assert response.status_code == 201, f"expected 201, got {response.status_code}"


def test_a_text_over_the_character_limit_is_422(client: TestClient) -> None:
    assert detail(add(client, text_of_length(MAX_CHARS + 1), title="Too long")) == (
        422,
        "text has 20001 characters, more than the 20000 allowed (EMBEDDINGS_MAX_INPUT_CHARS)",
    )


NUL_MESSAGE = "must not contain a NUL character (\\u0000): PostgreSQL text cannot hold it"


@pytest.mark.parametrize("field", ["text", "title", "collection"])
def test_a_nul_character_is_422_naming_the_field(client: TestClient, field: str) -> None:
    fields = {"text": "plain text", field: "before\x00after"}
    response = client.post("/v1/documents", json=fields)
    error = response.json()["error"]
    assert (response.status_code, error["param"], error["code"]) == (422, field, "nul_character")
    assert error["message"].startswith(f"{field}: {NUL_MESSAGE}"), error["message"]


def test_a_nul_character_is_refused_before_any_work(loading_client: TestClient) -> None:
    """Before the model is asked for (it is loading here: that answer would be a 503)."""
    response = add(loading_client, "text with a \x00 in it")
    assert (response.status_code, response.json()["error"]["param"]) == (422, "text")


def test_a_nul_character_in_the_search_collection_is_422(client: TestClient) -> None:
    response = search(client, "anything", collection="zoo\x00")
    error = response.json()["error"]
    assert (response.status_code, error["param"]) == (422, "collection"), error


def test_a_nul_character_in_q_is_searched(client: TestClient) -> None:
    """q is embedded, never stored or compared in PostgreSQL: any text may be searched."""
    assert hits(search(client, "kettle\x00tea", k=1)), "no document found"


# ---- GET /v1/search


def test_search_finds_the_stored_text_first_with_cosine_one(client: TestClient) -> None:
    add(client, "The kettle boils water for tea.", title="Kettle")
    top = hits(search(client, "The kettle boils water for tea."))[0]
    assert (top["title"], top["text"]) == ("Kettle", "The kettle boils water for tea.")
    assert top["score"] == pytest.approx(1.0, abs=1e-5), f"score of the same text: {top}"


def test_search_ranks_the_related_document_above_unrelated_ones(client: TestClient) -> None:
    add(client, "A recipe for chocolate cake with butter and sugar.", title="Cake")
    found = hits(search(client, "baking a dessert", k=3))
    assert found[0]["title"] == "Cake", f"ranking: {[h['title'] for h in found]}"


def test_search_scores_are_in_descending_order(client: TestClient) -> None:
    scores = [hit["score"] for hit in hits(search(client, "health checks", k=50))]
    assert scores == sorted(scores, reverse=True), f"scores: {scores}"


def test_search_returns_at_most_k_documents(client: TestClient) -> None:
    assert len(hits(search(client, "anything", k=2))) == 2


@pytest.mark.parametrize("k", [0, 51])
def test_k_outside_1_to_50_is_422(client: TestClient, k: int) -> None:
    assert search(client, "anything", k=k).status_code == 422


def test_a_q_of_the_character_limit_is_searched(client: TestClient) -> None:
    assert hits(search(client, text_of_length(MAX_CHARS), k=1)), "no document found"


def test_a_q_over_the_character_limit_is_422(client: TestClient) -> None:
    assert detail(search(client, text_of_length(MAX_CHARS + 1))) == (
        422,
        "q has 20001 characters, more than the 20000 allowed (EMBEDDINGS_MAX_INPUT_CHARS)",
    )


def test_search_in_a_collection_sees_only_its_documents(
    client: TestClient, settings: Settings, pg_cluster: PostgresCluster
) -> None:
    database = settings.database_url.database or ""
    pg_cluster.query("INSERT INTO collections (name) VALUES ('zoo') RETURNING id", database)
    add(client, "Elephants are large.", title="Elephants", collection="zoo")
    titles = [hit["title"] for hit in hits(search(client, "animals", k=50, collection="zoo"))]
    assert titles == ["Elephants"], f"titles found in 'zoo': {titles}"


def test_search_in_an_unknown_collection_is_404(client: TestClient) -> None:
    response = search(client, "x", collection="nope")
    assert detail(response) == (404, "collection 'nope' not found")


def test_search_skips_documents_without_an_embedding(
    client: TestClient, settings: Settings, pg_cluster: PostgresCluster
) -> None:
    database = settings.database_url.database or ""
    # As the previous release inserts: it does not know the embedding columns.
    pg_cluster.query(
        "INSERT INTO documents (collection_id, title, body) SELECT id, 'Unembedded', "
        "'Unembedded text' FROM collections WHERE name = 'default' RETURNING id",
        database,
    )
    titles = [hit["title"] for hit in hits(search(client, "Unembedded text", k=50))]
    assert "Unembedded" not in titles, f"a row without embedding was returned: {titles}"


# ---- the start-up backfill


@pytest.fixture
def fresh_settings(
    pg_cluster: PostgresCluster, app_password_file: Path, prefetched: Prefetched
) -> Settings:
    return seeded_copy(pg_cluster, app_password_file, prefetched.hf_home)


def start_and_backfill(settings: Settings, caplog: pytest.LogCaptureFixture) -> str:
    caplog.clear()
    with (
        caplog.at_level(logging.INFO, logger=BACKFILL_LOGGER),
        TestClient(create_app(settings, load_encoder=cached_load)),
    ):
        return wait_for_backfill(caplog)


def test_backfill_embeds_the_seed_documents_at_start_up(
    fresh_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    assert start_and_backfill(fresh_settings, caplog) == "backfill: embedded 3 documents"


def test_backfilled_seed_documents_are_found_by_search(
    fresh_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO, logger=BACKFILL_LOGGER),
        TestClient(create_app(fresh_settings, load_encoder=cached_load)) as client,
    ):
        wait_for_backfill(caplog)
        titles = {hit["title"] for hit in hits(search(client, "model cache", k=50))}
    assert titles == SEED_TITLES, f"titles found: {titles}"


def test_backfill_is_idempotent(fresh_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    start_and_backfill(fresh_settings, caplog)
    assert start_and_backfill(fresh_settings, caplog) == "backfill: embedded 0 documents"


def test_backfill_reembeds_documents_of_a_model_no_longer_configured(
    fresh_settings: Settings, caplog: pytest.LogCaptureFixture, pg_cluster: PostgresCluster
) -> None:
    start_and_backfill(fresh_settings, caplog)
    pg_cluster.query(
        "UPDATE documents SET embedding = '{1,0}', embedding_model = 'org/retired', "
        "embedding_dim = 2 WHERE title = 'Welcome' RETURNING id",
        fresh_settings.database_url.database or "",
    )
    assert start_and_backfill(fresh_settings, caplog) == "backfill: embedded 1 document"


# ---- while the model loads


@pytest.fixture
def loading_client(settings: Settings) -> Iterator[TestClient]:
    with app_while_loading(settings) as client:
        yield client


def test_documents_are_503_while_the_model_loads(loading_client: TestClient) -> None:
    response = add(loading_client, "too early")
    assert (response.status_code, response.headers.get("retry-after")) == (503, "5")


def test_search_is_503_while_the_model_loads(loading_client: TestClient) -> None:
    assert search(loading_client, "too early").status_code == 503
