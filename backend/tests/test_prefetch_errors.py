"""How Hub answers map to the prefetch's one-line reasons (with huggingface_hub's real errors).

The fake Hub covers 401/404; this covers the answers it does not produce (403, gated, 5xx).
"""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from huggingface_hub import hf_raise_for_status

from src.model_cache.prefetch import describe, scrub
from src.model_spec import ModelSpec

SPEC = ModelSpec("org/model", "v9")
TOKEN_FILE = Path("/run/secrets/huggingface_token")
URL = "http://hub.test/api/models/org/model/revision/v9"


def hub_error(status: int, headers: dict[str, str]) -> Exception:
    response = httpx2.Response(status, headers=headers, request=httpx2.Request("GET", URL))
    try:
        hf_raise_for_status(response)
    except Exception as error:
        return error
    raise AssertionError(f"HTTP {status} should raise")


@pytest.mark.parametrize(
    ("status", "headers", "token", "expected"),
    [
        (
            401,
            {"X-Error-Code": "RepoNotFound"},
            None,
            "repository not found, or it is private and no token was given (HTTP 401); "
            f"put a valid token in {TOKEN_FILE}",
        ),
        (
            401,
            {"X-Error-Message": "Invalid credentials in Authorization header"},
            "hf_x",
            f"the Hugging Face token was rejected (HTTP 401); put a valid token in {TOKEN_FILE}",
        ),
        (
            404,
            {"X-Error-Code": "RepoNotFound"},
            "hf_x",
            "repository not found, or the token has no access to it (HTTP 404)",
        ),
        (
            403,
            {"X-Error-Code": "GatedRepo"},
            "hf_x",
            "the repository is gated and the token was not granted access (HTTP 403)",
        ),
        (
            401,
            {"X-Error-Code": "GatedRepo"},
            None,
            "the repository is gated and no token was given (HTTP 401); "
            f"put a valid token in {TOKEN_FILE}",
        ),
        (403, {}, "hf_x", "the token lacks access to this repository, or it is gated (HTTP 403)"),
        (404, {"X-Error-Code": "RevisionNotFound"}, None, "revision 'v9' not found"),
        (500, {}, None, "the Hub answered HTTP 500"),
    ],
)
def test_http_answer_maps_to_reason(
    status: int, headers: dict[str, str], token: str | None, expected: str
) -> None:
    reason = describe(hub_error(status, headers), SPEC, token, "http://hub.test", TOKEN_FILE)
    assert reason == expected


def test_connection_error_names_the_endpoint() -> None:
    error = httpx2.ConnectError("[Errno 111] Connection refused")
    reason = describe(error, SPEC, None, "http://hub.test", TOKEN_FILE)
    assert reason == "cannot reach the Hub at http://hub.test: [Errno 111] Connection refused"


def test_scrub_hides_the_token_and_keeps_one_line() -> None:
    text = "error: failed for hf_secret_123\nTraceback details hf_secret_123"
    assert scrub(text, "hf_secret_123") == "error: failed for ***"
