"""The OpenAPI document (/openapi.json) shows the /v1 API in OpenAI's shapes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from src.app import create_app
from tests.conftest import Database

REF_PREFIX = "#/components/schemas/"


@pytest.fixture(scope="module")
def document(
    seeded_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    settings = seeded_database.settings(tmp_path_factory.mktemp("no-models"))
    with TestClient(create_app(settings)) as client:
        yield client.get("/openapi.json").json()


def schema_of(document: dict[str, Any], path: str, status: str, method: str = "get") -> str:
    """The name of the schema a response of `method path` has."""
    response = document["paths"][path][method]["responses"][status]
    ref: str = response["content"]["application/json"]["schema"]["$ref"]
    assert ref.startswith(REF_PREFIX), f"{method} {path} {status}: {ref}"
    return ref.removeprefix(REF_PREFIX)


def test_a_listed_model_has_openais_fields(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    listed = schemas[schema_of(document, "/v1/models", "200")]["properties"]["data"]["items"]
    model = schemas[listed["$ref"].removeprefix(REF_PREFIX)]
    assert {"id", "created", "owned_by"} <= set(model["required"]), (
        f"a model should have OpenAI's id, created, owned_by: {model['required']}"
    )
    assert model["properties"]["object"]["const"] == "model", f"object: {model['properties']}"


def test_a_model_by_id_is_documented(document: dict[str, Any]) -> None:
    assert schema_of(document, "/v1/models/{model}", "200") == "Model"
    assert schema_of(document, "/v1/models/{model}", "404") == "ErrorResponse"


def test_every_v1_error_has_openais_error_shape(document: dict[str, Any]) -> None:
    errors = {
        f"{method.upper()} {path} {status}": schema_of(document, path, status, method)
        for path, operations in document["paths"].items()
        if path.startswith("/v1/")
        for method, operation in operations.items()
        for status in operation["responses"]
        if int(status) >= 400
    }
    assert "POST /v1/embeddings 422" in errors, f"documented errors: {sorted(errors)}"
    other = {name: schema for name, schema in errors.items() if schema != "ErrorResponse"}
    assert other == {}, "every /v1 error should be documented as ErrorResponse"
    detail = document["components"]["schemas"]["ErrorDetail"]["properties"]
    assert set(detail) == {"message", "type", "param", "code"}


def test_the_embeddings_request_takes_dimensions_and_user(document: dict[str, Any]) -> None:
    request = document["components"]["schemas"]["EmbeddingRequest"]["properties"]
    assert {"dimensions", "user"} <= set(request), f"request fields: {sorted(request)}"
