"""The clients people already use, against the app served by uvicorn on loopback: the official
openai SDK and LangChain's OpenAIEmbeddings (base_url=.../v1). Test dependencies only
(requirements-dev.txt): neither is in the image."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import httpx2
import numpy as np
import openai
import pytest
import tiktoken
from langchain_openai import OpenAIEmbeddings

from src.app import create_app
from src.settings import Settings
from tests.conftest import Database, Prefetched
from tests.support.embeddings import cached_load, readyz_after_loading, text_of_length
from tests.support.fake_hub import PUBLIC_REPO
from tests.support.keys import READ_KEY, WRITE_KEY, bearer, write_keys_file
from tests.support.server import serving

TEXTS = ["The quick brown fox", "jumps over the lazy dog", "Ünïcödé and emoji 🦊"]
API_KEY = WRITE_KEY  # the SDKs send it as `Authorization: Bearer`; API_KEYS_FILE lists it


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing leaves this machine, and nothing is tokenized with tiktoken (whose vocabulary
    is downloaded at run time and is not these models' vocabulary anyway)."""
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = str(address[0])
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
            assert loopback, f"a connection left loopback: {address}"
        connect(self, address)

    def no_tiktoken(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"tiktoken was asked for an encoding: {args}")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(tiktoken, "get_encoding", no_tiktoken)
    monkeypatch.setattr(tiktoken, "encoding_for_model", no_tiktoken)


@pytest.fixture(scope="module")
def settings(
    seeded_database: Database, prefetched: Prefetched, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    keys = write_keys_file(
        tmp_path_factory.mktemp("keys") / "api_keys",
        {"sdk": ("write", WRITE_KEY), "reader": ("read", READ_KEY)},
    )
    return seeded_database.settings(prefetched.hf_home, models=PUBLIC_REPO, API_KEYS_FILE=str(keys))


@pytest.fixture(scope="module")
def base_url(settings: Settings) -> Iterator[str]:
    """The app with all-MiniLM-L6-v2 loaded, served at this URL."""
    with serving(create_app(settings, load_encoder=cached_load)) as url:
        with httpx2.Client(base_url=url) as http:
            readyz_after_loading(http)
        yield url


@pytest.fixture(scope="module")
def http(base_url: str) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=base_url, timeout=60, headers=bearer(API_KEY)) as client:
        yield client


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def langchain(base_url: str) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(
        model=PUBLIC_REPO,
        base_url=f"{base_url}/v1",
        api_key=API_KEY,  # type: ignore[arg-type]
        check_embedding_ctx_length=False,
        chunk_size=64,  # EMBEDDINGS_MAX_INPUTS
        max_retries=0,
    )


def api_embeddings(http: httpx2.Client, texts: list[str]) -> list[list[float]]:
    """What the HTTP API answers, as floats."""
    body = {"input": texts, "model": PUBLIC_REPO, "encoding_format": "float"}
    response = http.post("/v1/embeddings", json=body)
    assert response.status_code == 200, f"expected 200, got {response.status_code}: {response.text}"
    embeddings = [entry["embedding"] for entry in response.json()["data"]]
    shapes = [(type(e).__name__, len(e)) for e in embeddings]
    assert shapes == [("list", 384)] * len(texts), f"expected lists of 384 floats: {shapes}"
    return embeddings


# ---- openai: embeddings


def test_sdk_float_embeddings_equal_the_http_apis(
    client: openai.OpenAI, http: httpx2.Client
) -> None:
    response = client.embeddings.create(model=PUBLIC_REPO, input=TEXTS, encoding_format="float")
    assert [entry.embedding for entry in response.data] == api_embeddings(http, TEXTS)


def test_sdk_default_base64_embeddings_equal_the_http_apis(
    client: openai.OpenAI, http: httpx2.Client
) -> None:
    raw = client.embeddings.with_raw_response.create(model=PUBLIC_REPO, input=TEXTS)
    sent = raw.http_response.json()["data"][0]["embedding"]
    assert isinstance(sent, str), "the SDK's default should have asked for base64"
    decoded = np.array([entry.embedding for entry in raw.parse().data], dtype=np.float32)
    expected = np.array(api_embeddings(http, TEXTS), dtype=np.float32)
    assert np.array_equal(decoded, expected), "base64 embeddings differ from the float ones"


def test_sdk_user_is_accepted(client: openai.OpenAI, http: httpx2.Client) -> None:
    response = client.embeddings.create(
        model=PUBLIC_REPO, input=TEXTS[:1], encoding_format="float", user="user-1234"
    )
    assert [response.data[0].embedding] == api_embeddings(http, TEXTS[:1])


def test_sdk_dimensions_of_the_model_are_accepted(client: openai.OpenAI) -> None:
    response = client.embeddings.create(model=PUBLIC_REPO, input="text", dimensions=384)
    assert len(response.data[0].embedding) == 384


# ---- openai: models


def test_sdk_models_list_gives_the_repo_ids(client: openai.OpenAI) -> None:
    listed = [(model.id, model.object, model.owned_by) for model in client.models.list()]
    assert listed == [(PUBLIC_REPO, "model", "sentence-transformers")]


def test_sdk_retrieves_a_model_by_its_repo_id(client: openai.OpenAI) -> None:
    [listed] = client.models.list().data
    assert client.models.retrieve(PUBLIC_REPO) == listed


# ---- openai: errors carry our messages


def sdk_error(caught: pytest.ExceptionInfo[openai.APIStatusError]) -> tuple[str, str | None]:
    """The SDK exception's text and param."""
    return str(caught.value), caught.value.param


def test_sdk_unknown_model_error_names_the_available_ones(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.embeddings.create(model="org/other", input="text")
    assert sdk_error(caught) == (
        f"Error code: 404 - model 'org/other' not found; available models: {PUBLIC_REPO}",
        "model",
    )
    assert caught.value.code == "model_not_found"


def test_sdk_unknown_model_by_id_error_names_the_available_ones(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("org/other")
    assert sdk_error(caught) == (
        f"Error code: 404 - model 'org/other' not found; available models: {PUBLIC_REPO}",
        "model",
    )


def test_sdk_empty_input_error_names_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.embeddings.create(model=PUBLIC_REPO, input=["text", ""])
    assert sdk_error(caught) == (
        "Error code: 422 - input[1] is an empty string: every input needs some text",
        "input[1]",
    )


def test_sdk_too_long_input_error_names_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.embeddings.create(model=PUBLIC_REPO, input=["short", text_of_length(20001)])
    assert sdk_error(caught) == (
        "Error code: 422 - input[1] has 20001 characters, more than the 20000 allowed "
        "(EMBEDDINGS_MAX_INPUT_CHARS)",
        "input[1]",
    )


def test_sdk_too_many_inputs_error_says_the_limit(client: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.embeddings.create(model=PUBLIC_REPO, input=["text"] * 65)
    assert sdk_error(caught) == (
        "Error code: 422 - input has 65 texts, more than the 64 allowed per request "
        "(EMBEDDINGS_MAX_INPUTS)",
        "input",
    )


def test_sdk_other_dimensions_error_says_what_to_set(client: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.embeddings.create(model=PUBLIC_REPO, input="text", dimensions=8)
    assert sdk_error(caught) == (
        f"Error code: 422 - dimensions=8 is not supported: {PUBLIC_REPO} gives 384-dimensional "
        "embeddings and this server does not shorten them; leave dimensions out or set it to 384",
        "dimensions",
    )


def test_sdk_token_ids_error_asks_for_text(client: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.embeddings.create(model=PUBLIC_REPO, input=[[101, 7592, 102]])
    assert "this server embeds text only" in str(caught.value), str(caught.value)


# ---- openai: API keys


def test_sdk_without_a_valid_key_raises_authentication_error(base_url: str) -> None:
    other = openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-wrong", max_retries=0)
    with other, pytest.raises(openai.AuthenticationError) as caught:
        other.embeddings.create(model=PUBLIC_REPO, input="text")
    assert (caught.value.status_code, caught.value.code) == (401, "invalid_api_key")
    assert "the API key is not valid here" in str(caught.value), str(caught.value)


def test_sdk_with_a_read_key_embeds_but_may_not_store(base_url: str) -> None:
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key=READ_KEY, max_retries=0) as reader:
        assert len(reader.embeddings.create(model=PUBLIC_REPO, input="x").data[0].embedding) == 384
        with pytest.raises(openai.PermissionDeniedError) as caught:
            reader.post("/documents", body={"text": "x"}, cast_to=object)
    assert (caught.value.status_code, caught.value.code) == (403, "insufficient_scope")


# ---- LangChain


def test_langchain_embed_documents_equal_the_http_apis(
    langchain: OpenAIEmbeddings, http: httpx2.Client
) -> None:
    assert langchain.embed_documents(TEXTS) == api_embeddings(http, TEXTS)


def test_langchain_embed_query_equals_the_http_apis(
    langchain: OpenAIEmbeddings, http: httpx2.Client
) -> None:
    assert langchain.embed_query(TEXTS[0]) == api_embeddings(http, TEXTS[:1])[0]


def test_langchain_splits_more_documents_than_one_request_takes(
    langchain: OpenAIEmbeddings, http: httpx2.Client
) -> None:
    texts = [f"document number {i}" for i in range(65)]  # chunk_size=64: two requests
    assert langchain.embed_documents(texts) == api_embeddings(http, texts[:64]) + api_embeddings(
        http, texts[64:]
    )
