"""The API keys of inventory/local, as a client sees them on the deployed host: /v1 needs a
key, a read key cannot write, the real `openai` SDK works with a key and raises
AuthenticationError without one, and the health endpoints stay open. (Their rotation under
a steady client: test_redeploy.py; the refusal of an open API on a public address:
test_guards.py; the keys in no output, file, image or inspect: the leak scans.)"""

from __future__ import annotations

import os
from typing import Any

import openai
import pytest
from runs import http

API = "http://127.0.0.1:8000"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# The host's published port on this machine (molecule.yml), where the SDK connects.
PUBLISHED = f"http://127.0.0.1:{os.environ.get('NICA_DEMO_PORT', '18000')}/v1"


def envelope(body: Any) -> dict[str, Any]:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    assert isinstance(body, dict) and set(body) == {"error"}, f"not OpenAI's error shape: {body}"
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return dict(body["error"])


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/models"), ("POST", "/v1/embeddings"), ("GET", "/v1/search?q=x")],
)
def test_no_key_is_a_401_in_openais_shape(host, method, path):
    body = {"model": MODEL, "input": "x"} if method == "POST" else None
    status, answer = http(host, API + path, body, key=None)
    assert status == 401, f"{method} {path} without a key answered {status}: {answer}"
    assert envelope(answer)["code"] == "missing_api_key", answer


def test_a_key_that_is_not_listed_is_a_401(host):
    status, answer = http(host, f"{API}/v1/models", key="nica-not-a-listed-key-00000000000000")
    assert status == 401, f"an unknown key answered {status}: {answer}"
    assert envelope(answer)["code"] == "invalid_api_key", answer


def test_a_read_key_cannot_store_documents(host, api_keys):
    status, answer = http(host, f"{API}/v1/documents", {"text": "not stored"}, key=api_keys["read"])
    assert status == 403, f"POST /v1/documents with the read key answered {status}: {answer}"
    error = envelope(answer)
    assert error["code"] == "insufficient_scope" and "local-reader" in error["message"], error


def test_a_read_key_can_embed_and_search(host, api_keys):
    embedded, answer = http(
        host, f"{API}/v1/embeddings", {"model": MODEL, "input": "x"}, key=api_keys["read"]
    )
    assert embedded == 200, f"/v1/embeddings with the read key answered {embedded}: {answer}"
    searched, answer = http(host, f"{API}/v1/search?q=proxy&k=1", key=api_keys["read"])
    assert searched == 200, f"/v1/search with the read key answered {searched}: {answer}"


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_need_no_key(host, path):
    status, answer = http(host, API + path, key=None)
    assert status == 200, f"{path} without a key answered {status}: {answer}"


def test_the_openai_sdk_embeds_with_the_key(api_keys):
    client = openai.OpenAI(base_url=PUBLISHED, api_key=api_keys["read"], max_retries=0)
    vectors = client.embeddings.create(model=MODEL, input=["a first sentence", "a second"])
    assert [len(item.embedding) for item in vectors.data] == [384, 384]


def test_the_openai_sdk_raises_authentication_error_without_a_valid_key():
    client = openai.OpenAI(base_url=PUBLISHED, api_key="not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        client.embeddings.create(model=MODEL, input="x")
    assert raised.value.status_code == 401
