"""Real embeddings from the deployed backend, with the local Hub stopped."""

import math

import pytest

# The whole module runs with the local Hub stopped (hub_commits stops it).
pytestmark = pytest.mark.usefixtures("hub_commits")

URL = "http://127.0.0.1:8000/v1/embeddings"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def test_the_hub_is_stopped_during_these_checks(host):
    assert not host.service("fake-hf-hub").is_running, (
        "the local Hub must be down: serving is offline"
    )


def test_an_embedding_request_returns_normalized_vectors(http_post):
    status, body = http_post(
        URL, {"model": MODEL, "input": ["Olá, mundo!", "The cache is encrypted."]}
    )
    assert status == 200, f"/v1/embeddings answered {status}: {body}"
    assert body["object"] == "list" and body["model"] == MODEL
    assert [item["index"] for item in body["data"]] == [0, 1]
    for item in body["data"]:
        vector = item["embedding"]
        assert len(vector) == 384, f"all-MiniLM-L6-v2 gives 384 dimensions, got {len(vector)}"
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-4)
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0


def test_similar_sentences_are_closer_than_unrelated_ones(http_post):
    texts = [
        "A cat sits on the mat.",
        "A kitten is sitting on a rug.",
        "Interest rates rose again.",
    ]
    status, body = http_post(URL, {"model": MODEL, "input": texts})
    assert status == 200
    a, b, c = (item["embedding"] for item in body["data"])
    close = sum(x * y for x, y in zip(a, b, strict=True))
    far = sum(x * y for x, y in zip(a, c, strict=True))
    assert close > far + 0.2, f"similar pair {close:.3f} should beat the unrelated pair {far:.3f}"


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"model": "nobody/nothing", "input": "hi"}, 404),
        ({"model": MODEL, "input": []}, 422),
    ],
)
def test_bad_requests_get_a_clear_4xx(http_post, payload, status):
    got, body = http_post(URL, payload)
    assert got == status, f"expected {status} for {payload}, got {got}: {body}"


def test_the_serving_process_holds_no_token_in_its_environment(sh, serving):
    environ = sh(f"docker exec {serving} cat /proc/1/environ").split("\0")
    names = {entry.split("=", 1)[0] for entry in environ if entry}
    leaked = names & {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN"}
    assert not leaked, f"the serving process has {sorted(leaked)} in its environment"
    assert "HF_HUB_OFFLINE=1" in environ
