"""API keys (API_KEYS_FILE, src.api_keys, src.api.auth): 401 without a valid key, 403 outside
its scope, both in OpenAI's error shape; several keys valid at once; health and docs open;
a bad keys file stops the app before it serves, with one line."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from src.api_keys import entry_for
from src.app import create_app
from src.settings import ConfigError, Settings
from tests.conftest import Database, Prefetched
from tests.support.embeddings import cached_load, readyz_after_loading
from tests.support.fake_hub import PUBLIC_REPO
from tests.support.keys import NEW_WRITE_KEY, READ_KEY, WRITE_KEY, bearer, write_keys_file
from tests.support.runners import base_env, run_python

EMBED = {"input": "hello", "model": PUBLIC_REPO}


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_keys_file(
        tmp_path_factory.mktemp("keys") / "api_keys",
        {
            "reader": ("read", READ_KEY),
            "writer": ("write", WRITE_KEY),
            "writer-next": ("write", NEW_WRITE_KEY),  # a rotation: old and new both valid
        },
    )


@pytest.fixture(scope="module")
def settings(seeded_database: Database, prefetched: Prefetched, keys_file: Path) -> Settings:
    return seeded_database.settings(
        prefetched.hf_home, models=PUBLIC_REPO, API_KEYS_FILE=str(keys_file)
    )


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, load_encoder=cached_load)) as client:
        readyz_after_loading(client)
        yield client


def error_of(response: Any) -> tuple[int, dict[str, Any]]:
    return response.status_code, response.json()["error"]


# ---- 401 and 403 in OpenAI's shape


def test_no_key_is_401_in_openai_shape(client: TestClient) -> None:
    response = client.post("/v1/embeddings", json=EMBED)
    assert error_of(response) == (
        401,
        {
            "message": "no API key: send one as the header `Authorization: Bearer <key>` "
            "(the OpenAI SDKs send their api_key so)",
            "type": "invalid_request_error",
            "param": None,
            "code": "missing_api_key",
        },
    )
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {READ_KEY}x", f"Bearer {READ_KEY[:-1]}", "Bearer sk-anything"],
    ids=["longer", "shorter", "other"],
)
def test_a_key_that_is_not_listed_is_401(client: TestClient, authorization: str) -> None:
    status, error = error_of(
        client.post("/v1/embeddings", json=EMBED, headers={"Authorization": authorization})
    )
    assert (status, error["code"]) == (401, "invalid_api_key"), error


@pytest.mark.parametrize("authorization", [f"Basic {READ_KEY}", READ_KEY, "Bearer"])
def test_a_key_not_sent_as_bearer_is_401(client: TestClient, authorization: str) -> None:
    status, error = error_of(
        client.post("/v1/embeddings", json=EMBED, headers={"Authorization": authorization})
    )
    assert (status, error["code"]) == (401, "missing_api_key"), error


def test_a_read_key_cannot_store_documents(client: TestClient) -> None:
    response = client.post("/v1/documents", json={"text": "x"}, headers=bearer(READ_KEY))
    assert error_of(response) == (
        403,
        {
            "message": "the API key 'reader' has scope 'read'; POST /v1/documents needs "
            "scope 'write'",
            "type": "invalid_request_error",
            "param": None,
            "code": "insufficient_scope",
        },
    )


def test_a_read_key_cannot_list_collections(client: TestClient) -> None:
    status, error = error_of(client.get("/v1/collections", headers=bearer(READ_KEY)))
    assert (status, error["code"]) == (403, "insufficient_scope"), error


# ---- what each scope may do


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/embeddings", EMBED),
        ("GET", "/v1/search?q=hello", None),
        ("GET", "/v1/models", None),
        ("GET", f"/v1/models/{PUBLIC_REPO}", None),
    ],
)
def test_a_read_key_embeds_searches_and_lists_models(
    client: TestClient, method: str, path: str, body: Any
) -> None:
    response = client.request(method, path, json=body, headers=bearer(READ_KEY))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("key", [WRITE_KEY, NEW_WRITE_KEY], ids=["old", "new"])
def test_every_listed_write_key_stores_reads_and_lists(client: TestClient, key: str) -> None:
    title = f"stored with {key[:16]}"
    statuses = [
        client.post("/v1/documents", json={"text": title, "title": title}, headers=bearer(key)),
        client.get("/v1/collections", headers=bearer(key)),
        client.post("/v1/embeddings", json=EMBED, headers=bearer(key)),
    ]
    assert [r.status_code for r in statuses] == [201, 200, 200], [r.text for r in statuses]


def v1_routes(client: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every /v1 route the OpenAPI document lists, parameters filled in."""
    paths = client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
        for path, operations in paths.items()
        if path.startswith("/v1/")
        for method in operations
    ]


def test_every_v1_route_needs_a_key(client: TestClient) -> None:
    routes = v1_routes(client)
    assert len(routes) >= 6, f"expected the /v1 routes, found {routes}"
    open_routes = [
        (method, path) for method, path in routes if client.request(method, path).status_code != 401
    ]
    assert open_routes == [], f"/v1 routes answered without a key: {open_routes}"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json", "/docs"])
def test_health_and_docs_need_no_key(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


def test_without_a_keys_file_the_api_is_open(
    seeded_database: Database, prefetched: Prefetched
) -> None:
    settings = seeded_database.settings(prefetched.hf_home)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/collections").status_code == 200


# ---- logs: the key's name, never the key


def test_the_access_log_names_the_key_and_never_shows_one(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        client.post("/v1/embeddings", json=EMBED, headers=bearer(READ_KEY))
        client.post("/v1/embeddings", json=EMBED, headers=bearer(WRITE_KEY + "x"))
    access = [r.getMessage() for r in caplog.records if r.name == "src.access"]
    assert len(access) == 2 and "key=reader" in access[0], f"access lines: {access}"
    everything = "\n".join(caplog.messages)
    assert READ_KEY not in everything and WRITE_KEY not in everything, "a key was logged"


# ---- the keys file


def settings_with_keys(path: Path) -> Settings:
    return Settings.from_env(
        {"DATABASE_URL": "postgresql+psycopg://app@db/app", "API_KEYS_FILE": str(path)}
    )


def test_a_keys_file_is_read_with_its_names_and_scopes(tmp_path: Path) -> None:
    path = write_keys_file(tmp_path / "keys", {"a": ("read", READ_KEY), "b": ("write", WRITE_KEY)})
    keys = settings_with_keys(path).api_keys
    assert keys is not None
    assert [(k.name, k.scope) for k in keys.keys] == [("a", "read"), ("b", "write")]
    assert keys.match(WRITE_KEY) == keys.keys[1] and keys.match(READ_KEY) == keys.keys[0]
    assert READ_KEY not in repr(settings_with_keys(path)), "settings' repr shows no key"


GOOD = entry_for("k", "read", READ_KEY)
BAD_FILES: dict[str, tuple[str, str]] = {
    "not-json": ("[{", "is not valid JSON (line 1, column 3)"),
    "object": (json.dumps(GOOD), "must hold a JSON list of keys, not an object"),
    "empty": ("[]", "holds no keys: list at least one, or unset API_KEYS_FILE"),
    "plain-key": (
        json.dumps([{**GOOD, "sha256": READ_KEY}]),
        "entry 0 (k): sha256 must be 64 hex digits, the SHA-256 of the key",
    ),
    "scope": (json.dumps([{**GOOD, "scope": "admin"}]), "scope must be 'read' or 'write'"),
    "unknown-field": (json.dumps([{**GOOD, "scopes": "read"}]), "unknown field 'scopes'"),
    "missing-field": (json.dumps([{"name": "k", "scope": "read"}]), "'sha256' is missing"),
    "bad-name": (json.dumps([{**GOOD, "name": "a b"}]), "name must be 1-64 of"),
    "same-name": (
        json.dumps([GOOD, entry_for("k", "write", WRITE_KEY)]),
        "entries 0 and 1 have the same name 'k'",
    ),
    "same-key": (
        json.dumps([GOOD, entry_for("other", "write", READ_KEY)]),
        "entries 0 and 1 are the same key",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_keys_file_is_refused_in_one_line(tmp_path: Path, case: str) -> None:
    content, expected = BAD_FILES[case]
    path = tmp_path / "keys"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        settings_with_keys(path)
    message = str(caught.value)
    assert message.startswith(f"API_KEYS_FILE: {path}") and expected in message, message
    assert "\n" not in message, f"one line expected: {message!r}"


def test_the_app_does_not_start_with_a_missing_keys_file(tmp_path: Path) -> None:
    missing = tmp_path / "api_keys"
    env = base_env(
        DATABASE_URL="postgresql+psycopg://app@127.0.0.1:1/app", API_KEYS_FILE=str(missing)
    )
    result = run_python(["-c", "import src.main"], env)
    assert (result.returncode, result.stderr.strip().splitlines()[-1:]) == (
        2,
        [f"error: API_KEYS_FILE: cannot read {missing}: No such file or directory"],
    ), result.stderr
    assert result.stderr.count("error:") == 1, result.stderr
