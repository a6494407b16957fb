"""testing/load/steady_client.py against the real app served on loopback: right answers count
as ok, wrong ones (a 200 with the wrong body) as failed; the API key from a file or the
environment; HTTPS checked against a CA."""

from __future__ import annotations

import importlib.util
import json
import math
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx2
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.app import create_app
from src.settings import Settings
from tests.conftest import Database, Prefetched
from tests.support.embeddings import cached_load, readyz_after_loading
from tests.support.fake_hub import PUBLIC_REPO
from tests.support.keys import READ_KEY, bearer, write_keys_file
from tests.support.runners import base_env
from tests.support.server import serving

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "testing" / "load" / "steady_client.py"
REQUESTS = 8  # one thread: requests 3 and 7 are searches, the other six embeddings


def load_test_ca() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_test_ca", REPO / "testing" / "tls" / "make_test_ca.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# ---- the app, with a switch that makes its answers wrong


Corruption = Callable[[Any], Any]


def set_first(values: list[Any], value: Any) -> list[Any]:
    return [value, *values[1:]]


# name -> (path it corrupts, what it does to the JSON answer)
CORRUPTIONS: dict[str, tuple[str, Corruption]] = {
    "383 values": (
        "/v1/embeddings",
        lambda a: {**a, "data": [{**a["data"][0], "embedding": a["data"][0]["embedding"][:-1]}]},
    ),
    "norm 2": (
        "/v1/embeddings",
        lambda a: {
            **a,
            "data": [{**a["data"][0], "embedding": [2 * v for v in a["data"][0]["embedding"]]}],
        },
    ),
    "a NaN": (
        "/v1/embeddings",
        lambda a: {
            **a,
            "data": [{**a["data"][0], "embedding": set_first(a["data"][0]["embedding"], math.nan)}],
        },
    ),
    "no data": ("/v1/embeddings", lambda a: {**a, "data": []}),
    "hits without scores": (
        "/v1/search",
        lambda a: {**a, "data": [{k: v for k, v in h.items() if k != "score"} for h in a["data"]]},
    ),
    "no hits": ("/v1/search", lambda a: {**a, "data": []}),
    "hits not a list": ("/v1/search", lambda a: {**a, "data": {"hits": a["data"]}}),
    "worst first": ("/v1/search", lambda a: {**a, "data": list(reversed(a["data"]))}),
}


class Corrupting:
    """The app, with its answers on one path rewritten by `corruption` while it is set."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.corruption: tuple[str, Corruption] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chosen = self.corruption
        if scope["type"] != "http" or chosen is None or scope["path"] != chosen[0]:
            await self.app(scope, receive, send)
            return
        start: Message = {}
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = json.dumps(chosen[1](json.loads(b"".join(chunks)))).encode()
            headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewrite)


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_keys_file(
        tmp_path_factory.mktemp("keys") / "api_keys", {"steady": ("read", READ_KEY)}
    )


@pytest.fixture(scope="module")
def settings(seeded_database: Database, prefetched: Prefetched, keys_file: Path) -> Settings:
    return seeded_database.settings(
        prefetched.hf_home, models=PUBLIC_REPO, API_KEYS_FILE=str(keys_file)
    )


@pytest.fixture(scope="module")
def app(settings: Settings) -> Corrupting:
    return Corrupting(create_app(settings, load_encoder=cached_load))


def wait_until_searchable(base: str, **client: Any) -> None:
    """Ready, and the seed documents embedded (the start-up backfill)."""
    with httpx2.Client(base_url=base, timeout=30, headers=bearer(READ_KEY), **client) as http:
        readyz_after_loading(http)
        for _ in range(600):
            if http.get("/v1/search", params={"q": "x"}).json()["data"]:
                return
            time.sleep(0.05)
    raise AssertionError("the seed documents were not embedded in 30 s")


@pytest.fixture(scope="module")
def base(app: Corrupting) -> Iterator[str]:
    with serving(app) as url:
        wait_until_searchable(url)
        yield url


def run_client(
    base: str, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """The client as a deployment runs it: python3, a bounded run; its result file."""
    out = tmp_path / "result.json"
    command = [sys.executable, str(CLIENT), "--url", base, "--model", PUBLIC_REPO]
    command += ["--out", str(out), "--stop-file", str(tmp_path / "stop")]
    command += ["--threads", "1", "--pause", "0", "--max-requests", str(REQUESTS), *args]
    done = subprocess.run(
        command, env=base_env(**(env or {})), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"the client failed: {done.stderr}"
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def counts(result: dict[str, Any]) -> tuple[int, int, int, int]:
    return result["sent"], result["ok"], result["failed"], result["wrong_answers"]


# ---- right answers


def test_right_answers_are_ok_with_the_key_from_a_file(
    base: str, tmp_path: Path, keys_file: Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(READ_KEY + "\n")
    result = run_client(base, tmp_path, "--api-key-file", str(key_file))
    assert counts(result) == (REQUESTS, REQUESTS, 0, 0), result


def test_the_key_may_come_from_the_environment(base: str, tmp_path: Path) -> None:
    result = run_client(base, tmp_path, env={"NICA_API_KEY": READ_KEY})
    assert counts(result) == (REQUESTS, REQUESTS, 0, 0), result


def test_a_wrong_key_fails_every_request(base: str, tmp_path: Path) -> None:
    result = run_client(base, tmp_path, env={"NICA_API_KEY": READ_KEY + "x"})
    assert counts(result) == (REQUESTS, 0, REQUESTS, 0), result
    assert all("HTTP 401" in reason for reason in result["failures"]), result["failures"]


# ---- wrong answers


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_wrong_answer_counts_as_failed(
    app: Corrupting, base: str, tmp_path: Path, name: str
) -> None:
    path, _ = CORRUPTIONS[name]
    app.corruption = CORRUPTIONS[name]
    try:
        result = run_client(base, tmp_path, env={"NICA_API_KEY": READ_KEY})
    finally:
        app.corruption = None
    wrong = 6 if path == "/v1/embeddings" else 2
    assert counts(result) == (REQUESTS, REQUESTS - wrong, wrong, wrong), result
    assert all("wrong answer" in reason for reason in result["failures"]), result["failures"]


# ---- HTTPS


@pytest.fixture(scope="module")
def tls_base(
    app: Corrupting, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    ca = load_test_ca()
    directory = tmp_path_factory.mktemp("ca")
    issued = ca.issue(directory, ["nica.test"], ["127.0.0.1"])
    with serving(app, ssl_certfile=str(issued.certificate), ssl_keyfile=str(issued.key)) as url:
        wait_until_searchable(url, verify=ssl.create_default_context(cafile=directory / "ca.pem"))
        yield url, directory / "ca.pem"


def test_https_with_the_ca_is_ok(tls_base: tuple[str, Path], tmp_path: Path) -> None:
    url, ca = tls_base
    result = run_client(url, tmp_path, "--ca-file", str(ca), env={"NICA_API_KEY": READ_KEY})
    assert counts(result) == (REQUESTS, REQUESTS, 0, 0), result


def test_https_checks_the_certificate_for_the_server_name(
    tls_base: tuple[str, Path], tmp_path: Path
) -> None:
    url, ca = tls_base
    env = {"NICA_API_KEY": READ_KEY}
    named = run_client(url, tmp_path, "--ca-file", str(ca), "--server-name", "nica.test", env=env)
    other = run_client(url, tmp_path, "--ca-file", str(ca), "--server-name", "other.test", env=env)
    assert counts(named) == (REQUESTS, REQUESTS, 0, 0), named
    assert other["ok"] == 0 and "CERTIFICATE_VERIFY_FAILED" in other["failures"][0], other


def test_https_without_the_ca_fails(tls_base: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = tls_base
    result = run_client(url, tmp_path, env={"NICA_API_KEY": READ_KEY})
    assert result["ok"] == 0 and "CERTIFICATE_VERIFY_FAILED" in result["failures"][0], result


def test_an_unreadable_key_file_stops_the_client_in_one_line(base: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-key"
    done = subprocess.run(
        [
            sys.executable,
            str(CLIENT),
            "--url",
            base,
            "--model",
            PUBLIC_REPO,
            "--out",
            str(tmp_path / "out"),
            "--stop-file",
            str(tmp_path / "stop"),
            "--api-key-file",
            str(missing),
        ],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr.count("\n")) == (2, 1), done.stderr
    assert done.stderr.startswith("error: [Errno 2] No such file or directory"), done.stderr
