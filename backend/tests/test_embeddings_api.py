"""POST /v1/embeddings and the "embeddings" readiness check, through the app's lifespan."""

from __future__ import annotations

import base64
import dataclasses
import shutil
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from tokenizers import Encoding

from src.app import create_app
from src.embeddings import Encoder
from src.embeddings.functional import F32
from src.model_cache.manifest import load_manifest, snapshot_dir
from src.settings import Settings
from tests.conftest import Database, Prefetched
from tests.support.embeddings import (
    MIN_COSINE,
    app_while_loading,
    cached_load,
    readyz_after_loading,
    reference_items,
    text_of_length,
)
from tests.support.fake_hub import PUBLIC_REPO

ITEMS = reference_items()
DIMENSION = 384
MAX_CHARS = 20000  # EMBEDDINGS_MAX_INPUT_CHARS' default


@pytest.fixture(scope="module")
def settings(seeded_database: Database, prefetched: Prefetched) -> Settings:
    return seeded_database.settings(prefetched.hf_home, models=PUBLIC_REPO)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    """The app with all-MiniLM-L6-v2 loaded from the prefetched cache."""
    with TestClient(create_app(settings, load_encoder=cached_load)) as client:
        readyz_after_loading(client)
        yield client


def embed(client: httpx2.Client, text_input: Any, **fields: Any) -> httpx2.Response:
    return client.post("/v1/embeddings", json={"input": text_input, "model": PUBLIC_REPO, **fields})


def error(response: httpx2.Response) -> tuple[int, str, str | None]:
    """Status, message and param of an error in the OpenAI shape."""
    body = response.json()["error"]
    return response.status_code, body["message"], body["param"]


def vectors(response: httpx2.Response) -> np.ndarray[Any, np.dtype[np.float64]]:
    assert response.status_code == 200, f"expected 200, got {response.status_code}: {response.text}"
    return np.array([entry["embedding"] for entry in response.json()["data"]])


# ---- answers


def test_one_embedding_per_input_in_order(client: TestClient) -> None:
    body = embed(client, ["first", "second", "third"]).json()
    assert body["object"] == "list" and body["model"] == PUBLIC_REPO
    shape = [(e["object"], e["index"], len(e["embedding"])) for e in body["data"]]
    assert shape == [("embedding", i, DIMENSION) for i in range(3)], f"data entries: {shape}"


def test_embeddings_match_sentence_transformers(client: TestClient) -> None:
    chosen = [ITEMS[2], ITEMS[8], ITEMS[17], ITEMS[-2]]
    ours = vectors(embed(client, [item.text for item in chosen]))
    reference = np.array([item.embedding for item in chosen])
    norms = np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1)
    cosines = (ours * reference).sum(axis=1) / norms
    assert (cosines >= MIN_COSINE).all(), (
        f"cosines to sentence-transformers {cosines.tolist()}, expected >= {MIN_COSINE}"
    )


def test_embeddings_have_unit_norm(client: TestClient) -> None:
    norms = np.linalg.norm(vectors(embed(client, ["short", ITEMS[-3].text])), axis=1)
    assert np.allclose(norms, 1, atol=1e-5), f"norms: {norms}"


def test_a_single_string_is_embedded_like_a_one_item_list(client: TestClient) -> None:
    single = embed(client, "The quick brown fox").json()
    listed = embed(client, ["The quick brown fox"]).json()
    assert single == listed


def test_usage_counts_every_token_the_model_read(client: TestClient) -> None:
    chosen = [ITEMS[0], ITEMS[5], ITEMS[-1]]  # the last one is truncated at 256 tokens
    usage = embed(client, [item.text for item in chosen]).json()["usage"]
    tokens = sum(item.token_count for item in chosen)
    assert usage == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_base64_format_carries_the_same_float32_values(client: TestClient) -> None:
    as_floats = vectors(embed(client, "base64 please"))[0]
    encoded = embed(client, "base64 please", encoding_format="base64").json()["data"][0]
    decoded = np.frombuffer(base64.b64decode(encoded["embedding"]), dtype="<f4")
    assert np.array_equal(decoded, as_floats.astype(np.float32))


def test_openapi_documents_the_endpoint(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/embeddings"]["post"]
    assert "OpenAI" in operation["description"]
    assert "EMBEDDINGS_MAX_INPUT_CHARS" in operation["responses"]["422"]["description"]


class HeldEncoder(Encoder):
    """The same tokenizer and weights as `inner`; a forward pass waits until `release` is set."""

    def __init__(self, inner: Encoder, started: threading.Event, release: threading.Event):
        vars(self).update(vars(inner))
        self.started, self.release = started, release

    def forward(self, encodings: Sequence[Encoding]) -> F32:
        self.started.set()
        self.release.wait(timeout=10)
        return super().forward(encodings)


def test_the_server_answers_while_an_encode_runs(settings: Settings) -> None:
    started, release = threading.Event(), threading.Event()

    def load_held(path: Path, onnx_file: str | None) -> Encoder:
        return HeldEncoder(cached_load(path, onnx_file), started, release)

    with (
        TestClient(create_app(settings, load_encoder=load_held)) as client,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        readyz_after_loading(client)
        pending = pool.submit(embed, client, "held until /healthz has answered")
        try:
            assert started.wait(timeout=10), "the encode should have started"
            health = client.get("/healthz")
            still_encoding = not pending.done()
        finally:
            release.set()
        embedded = pending.result(timeout=30)
    assert health.status_code == 200 and still_encoding, "/healthz waited for the encode"
    assert embedded.status_code == 200, f"the held request failed: {embedded.text}"


# ---- refusals


def test_unknown_model_is_404_naming_the_available_models(client: TestClient) -> None:
    response = client.post("/v1/embeddings", json={"input": "hi", "model": "org/other"})
    assert error(response) == (
        404,
        f"model 'org/other' not found; available models: {PUBLIC_REPO}",
        "model",
    )


def test_empty_list_is_422(client: TestClient) -> None:
    assert error(embed(client, [])) == (
        422,
        "input is an empty list: give at least one text",
        "input",
    )


@pytest.mark.parametrize(
    ("text_input", "where"), [("", "input"), (["text", ""], "input[1]")], ids=["string", "item"]
)
def test_empty_string_is_422_naming_it(client: TestClient, text_input: Any, where: str) -> None:
    assert error(embed(client, text_input)) == (
        422,
        f"{where} is an empty string: every input needs some text",
        where,
    )


def test_more_inputs_than_the_limit_is_422(client: TestClient) -> None:
    assert error(embed(client, ["text"] * 65)) == (
        422,
        "input has 65 texts, more than the 64 allowed per request (EMBEDDINGS_MAX_INPUTS)",
        "input",
    )


def test_inputs_up_to_the_limit_are_embedded(client: TestClient) -> None:
    assert vectors(embed(client, ["text"] * 64)).shape == (64, DIMENSION)


def test_the_limit_follows_the_settings(settings: Settings) -> None:
    limited = dataclasses.replace(settings, embeddings_max_inputs=2)
    with TestClient(create_app(limited, load_encoder=cached_load)) as client:
        readyz_after_loading(client)
        response = embed(client, ["a", "b", "c"])
    assert response.status_code == 422, f"expected 422, got {response.status_code}"


def test_an_input_of_the_character_limit_is_embedded(client: TestClient) -> None:
    response = embed(client, [text_of_length(MAX_CHARS), "short"])
    assert vectors(response).shape == (2, DIMENSION)
    # Truncated at all-MiniLM-L6-v2's max_seq_length: 256 tokens, then 3 for "short".
    assert response.json()["usage"]["prompt_tokens"] == 256 + 3


@pytest.mark.parametrize(
    ("text_input", "where"),
    [
        (text_of_length(MAX_CHARS + 1), "input"),
        (["short", text_of_length(MAX_CHARS + 1)], "input[1]"),
    ],
    ids=["string", "item"],
)
def test_an_input_over_the_character_limit_is_422_naming_it(
    client: TestClient, text_input: Any, where: str
) -> None:
    assert error(embed(client, text_input)) == (
        422,
        f"{where} has 20001 characters, more than the 20000 allowed (EMBEDDINGS_MAX_INPUT_CHARS)",
        where,
    )


def test_the_character_limit_follows_embeddings_max_input_chars(
    seeded_database: Database, prefetched: Prefetched
) -> None:
    settings = seeded_database.settings(
        prefetched.hf_home, models=PUBLIC_REPO, EMBEDDINGS_MAX_INPUT_CHARS="10"
    )
    with TestClient(create_app(settings, load_encoder=cached_load)) as client:
        readyz_after_loading(client)
        # Characters, not bytes: these 10 characters are 12 bytes of UTF-8.
        accepted = embed(client, ["héllo wörl"])
        refused = embed(client, ["ok", "hello world"])
    assert accepted.status_code == 200, f"expected 200, got {accepted.status_code}: {accepted.text}"
    assert error(refused) == (
        422,
        "input[1] has 11 characters, more than the 10 allowed (EMBEDDINGS_MAX_INPUT_CHARS)",
        "input[1]",
    )


def test_a_non_text_item_is_422_naming_it(client: TestClient) -> None:
    assert error(embed(client, ["text", None])) == (
        422,
        "input[1] must be a string, not null",
        "input[1]",
    )


@pytest.mark.parametrize("tokens", [[101, 7592], [[101, 7592], [2088]]], ids=["one", "several"])
def test_token_ids_are_422_asking_for_text(client: TestClient, tokens: Any) -> None:
    assert error(embed(client, tokens)) == (
        422,
        "input holds token ids; this server embeds text only, so send strings "
        "(with LangChain's OpenAIEmbeddings, set check_embedding_ctx_length=False)",
        "input",
    )


def test_dimensions_other_than_the_models_are_422(client: TestClient) -> None:
    assert error(embed(client, "short", dimensions=8)) == (
        422,
        f"dimensions=8 is not supported: {PUBLIC_REPO} gives 384-dimensional embeddings and "
        "this server does not shorten them; leave dimensions out or set it to 384",
        "dimensions",
    )


def test_dimensions_equal_to_the_models_are_accepted(client: TestClient) -> None:
    with_dimensions = embed(client, "same vector", dimensions=DIMENSION)
    assert np.array_equal(vectors(with_dimensions), vectors(embed(client, "same vector")))


def test_an_unknown_field_is_422_naming_it(client: TestClient) -> None:
    assert error(embed(client, "text", truncate="END")) == (
        422,
        "truncate is not a field of this request (see /docs)",
        "truncate",
    )


def test_the_user_field_is_accepted_and_ignored(client: TestClient) -> None:
    with_user = embed(client, "same vector", user="user-1234")
    assert with_user.json() == embed(client, "same vector").json()


# ---- while loading, and after a failed load


@pytest.fixture
def loading_client(settings: Settings) -> Iterator[TestClient]:
    """The app while its model is still loading (the loader waits until the test ends)."""
    with app_while_loading(settings) as client:
        yield client


def test_readyz_is_503_while_the_model_loads(loading_client: TestClient) -> None:
    response = loading_client.get("/readyz")
    assert response.status_code == 503, f"expected 503, got {response.status_code}"
    assert response.json()["checks"]["embeddings"] == f"{PUBLIC_REPO}@main: loading"


def test_embeddings_are_503_while_the_model_loads(loading_client: TestClient) -> None:
    response = embed(loading_client, "too early")
    assert (response.status_code, response.headers.get("retry-after")) == (503, "5")


@pytest.fixture(scope="module")
def broken_hf_home(prefetched: Prefetched, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the warm cache whose onnx/model.onnx (the model's weights) starts with
    garbage, at the right size."""
    hf_home = tmp_path_factory.mktemp("hf-home-broken")
    shutil.copytree(prefetched.hf_home, hf_home, symlinks=True, dirs_exist_ok=True)
    commit = load_manifest(hf_home)[PUBLIC_REPO].commit
    weights = (snapshot_dir(hf_home, PUBLIC_REPO, commit) / "onnx" / "model.onnx").resolve()
    assert weights.is_relative_to(hf_home), f"the copy should not share {weights}"
    with weights.open("r+b") as handle:
        handle.write(b"\xff" * 64)
    return hf_home


@pytest.fixture(scope="module")
def broken_client(seeded_database: Database, broken_hf_home: Path) -> Iterator[TestClient]:
    settings = seeded_database.settings(broken_hf_home, models=PUBLIC_REPO)
    with TestClient(create_app(settings, load_encoder=cached_load)) as client:
        yield client


def test_readyz_is_503_naming_a_model_that_failed_to_load(broken_client: TestClient) -> None:
    response = readyz_after_loading(broken_client)
    assert response.status_code == 503, f"expected 503, got {response.status_code}"
    check = response.json()["checks"]["embeddings"]
    prefix = f"{PUBLIC_REPO}@main: failed to load: file onnx/model.onnx has sha256 "
    assert check.startswith(prefix), f"embeddings check: {check}"


def test_embeddings_are_503_for_a_model_that_failed_to_load(broken_client: TestClient) -> None:
    readyz_after_loading(broken_client)
    response = embed(broken_client, "hello")
    assert response.status_code == 503, f"expected 503, got {response.status_code}"
    assert "failed to load" in response.json()["error"]["message"]
