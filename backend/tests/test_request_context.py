"""X-Request-ID and the access log (src.api.request_context): the client's id kept when
well-formed (tests/data/request_id_examples.json, shared with the proxy's test), else a new
one; on the response, in the access log line; no query string, and so no search text, in any
log the backend writes (uvicorn's own access log is off: src.main)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient

from src.app import create_app
from src.settings import Settings
from tests.conftest import Database, Prefetched
from tests.support.docs_server import serving
from tests.support.embeddings import readyz_after_loading
from tests.support.fake_hub import PUBLIC_REPO

EXAMPLES = json.loads(
    (
        Path(__file__).resolve().parents[2] / "tests" / "data" / "request_id_examples.json"
    ).read_text()
)
MADE = re.compile(r"[0-9a-f]{32}")  # an id the backend makes (as nginx's $request_id)
SEARCH_TEXT = "aardvark-marmalade-7c41"  # a user's search, found in no log


@pytest.fixture(scope="module")
def settings(seeded_database: Database, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return seeded_database.settings(tmp_path_factory.mktemp("hf"))


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)

    @app.get("/v1/fails")
    def fails() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def sent_id(client: TestClient, value: str) -> str:
    response = client.get("/healthz", headers={b"X-Request-ID": value.encode("utf-8")})
    return response.headers["x-request-id"]


@pytest.mark.parametrize("value", EXAMPLES["accept"])
def test_a_well_formed_request_id_comes_back(client: TestClient, value: str) -> None:
    assert sent_id(client, value) == value


@pytest.mark.parametrize("value", EXAMPLES["refuse"])
def test_a_malformed_request_id_is_replaced(client: TestClient, value: str) -> None:
    answered = sent_id(client, value)
    assert MADE.fullmatch(answered), f"expected a new id for {value!r}, got {answered!r}"


def test_without_one_each_request_gets_a_new_id(client: TestClient) -> None:
    ids = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3 and all(MADE.fullmatch(i) for i in ids), ids


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "src.access"]


def test_the_access_line_has_the_id_and_the_path_without_the_query(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        client.get(f"/v1/collections?note={SEARCH_TEXT}", headers={"X-Request-ID": "line-1"})
    [line] = access_lines(caplog)
    assert re.fullmatch(
        r'testclient "GET /v1/collections" 200 \d+ B [\d.]+ ms id=line-1 key=-', line
    ), line
    server_side = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]
    assert SEARCH_TEXT not in "\n".join(server_side), server_side


def test_a_failing_request_carries_its_id_and_is_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = client.get("/v1/fails", headers={"X-Request-ID": "failing-1"})
    assert (response.status_code, response.headers.get("x-request-id")) == (500, "failing-1")
    assert any(
        '"GET /v1/fails" 500' in line and "id=failing-1" in line for line in access_lines(caplog)
    ), access_lines(caplog)


# ---- the server as the image runs it


def test_a_search_text_is_in_no_log_of_the_server(
    seeded_database: Database, prefetched: Prefetched, tmp_path: Path
) -> None:
    """uvicorn src.main:app as docker/entrypoint.sh starts it (no --no-access-log)."""
    output = tmp_path / "server.log"
    environ = {
        "DATABASE_URL": seeded_database.url,
        "DATABASE_PASSWORD_FILE": str(seeded_database.password_file),
        "HF_MODEL_REPOS": PUBLIC_REPO,
    }
    server = serving(prefetched.hf_home, environ=environ, timeout=60, output=output)
    with server as base, httpx2.Client(base_url=base, timeout=30) as http:
        readyz_after_loading(http)
        answers = [
            http.get("/v1/search", params={"q": SEARCH_TEXT}, headers={"X-Request-ID": "s-1"}),
            http.get("/v1/search", params={"q": SEARCH_TEXT, "k": 99}),  # 422
            http.get("/v1/search", params={"q": SEARCH_TEXT, "collection": "nope"}),  # 404
        ]
    assert [a.status_code for a in answers] == [200, 422, 404], [a.text for a in answers]
    logged = output.read_text()
    assert SEARCH_TEXT not in logged, f"the search text was logged:\n{logged}"
    assert re.search(r'src\.access: 127\.0\.0\.1 "GET /v1/search" 200 .* id=s-1 ', logged), (
        f"expected the app's access line for the search:\n{logged}"
    )
