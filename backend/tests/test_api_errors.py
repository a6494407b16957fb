"""Errors under /v1 in the OpenAI API's shape, `{"error": {"message", "type", "param",
"code"}}`, the one OpenAI's SDKs read; other routes keep FastAPI's shapes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tokenizers import Encoding

from src.app import create_app
from src.embeddings import Encoder
from src.embeddings.functional import F32
from tests.conftest import Database, Prefetched
from tests.support.embeddings import cached_load, readyz_after_loading
from tests.support.fake_hub import PUBLIC_REPO


def openai_error(message: str, param: str | None, code: str | None, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@pytest.fixture(scope="module")
def client(
    seeded_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The app without models: requests fail before any model is needed."""
    settings = seeded_database.settings(tmp_path_factory.mktemp("no-models"))
    with TestClient(create_app(settings)) as client:
        yield client


def test_a_missing_field_is_422_naming_it(client: TestClient) -> None:
    response = client.post("/v1/embeddings", json={"input": "text"})
    assert (response.status_code, response.json()) == (
        422,
        openai_error("model is required", "model", "missing", "invalid_request_error"),
    )


def test_a_query_parameter_out_of_range_is_422_naming_it(client: TestClient) -> None:
    response = client.get("/v1/search", params={"q": "text", "k": 0})
    assert (response.status_code, response.json()["error"]) == (
        422,
        {
            "message": "k: Input should be greater than or equal to 1, got '0'",
            "type": "invalid_request_error",
            "param": "k",
            "code": "greater_than_equal",
        },
    )


def test_a_body_that_is_not_json_is_422_saying_so(client: TestClient) -> None:
    response = client.post(
        "/v1/embeddings", content=b"{input: text}", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, f"expected 422, got {response.status_code}"
    message = response.json()["error"]["message"]
    assert message.startswith("the request body is not valid JSON: "), f"message: {message}"


def test_an_unknown_v1_route_is_404_in_the_openai_shape(client: TestClient) -> None:
    response = client.get("/v1/engines")
    assert (response.status_code, response.json()) == (
        404,
        openai_error("Not Found: GET /v1/engines", None, None, "invalid_request_error"),
    )


def test_routes_outside_v1_keep_fastapis_shape(client: TestClient) -> None:
    response = client.get("/engines")
    assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})


TRIGGER = "fail like a bug"


class FailingEncoder(Encoder):
    """The same tokenizer and weights as `inner`; a forward pass fails as a bug would on
    TRIGGER's tokens (only there: the start-up backfill uses it too)."""

    def __init__(self, inner: Encoder):
        vars(self).update(vars(inner))
        self.trigger = inner.tokenize([TRIGGER])[0].ids

    def forward(self, encodings: Sequence[Encoding]) -> F32:
        if any(encoding.ids == self.trigger for encoding in encodings):
            raise RuntimeError("internal detail that must not be shown")
        return super().forward(encodings)


def test_an_unexpected_failure_is_500_in_the_openai_shape(
    seeded_database: Database, prefetched: Prefetched
) -> None:
    settings = seeded_database.settings(prefetched.hf_home, models=PUBLIC_REPO)

    def load_failing(path: Path, onnx_file: str | None) -> Encoder:
        return FailingEncoder(cached_load(path, onnx_file))

    app = create_app(settings, load_encoder=load_failing)
    with TestClient(app, raise_server_exceptions=False) as client:
        readyz_after_loading(client)
        response = client.post("/v1/embeddings", json={"input": TRIGGER, "model": PUBLIC_REPO})
    assert (response.status_code, response.json()) == (
        500,
        openai_error(
            "internal error: the backend's log has the details", None, None, "server_error"
        ),
    )
