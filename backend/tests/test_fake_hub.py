"""The fake Hub itself: the protocol details huggingface_hub relies on, and its CLI."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.fake_hub import (
    FAKE_HUB,
    PRIVATE_REPO,
    PUBLIC_REPO,
    READY_PREFIX,
    FakeHub,
    running_fake_hub,
)


def fetch(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_range_request_gets_206_and_those_bytes(fake_hub: FakeHub, model_dir: Path) -> None:
    url = f"{fake_hub.url}/{PUBLIC_REPO}/resolve/main/config.json"
    status, headers, body = fetch(url, headers={"Range": "bytes=2-9"})
    assert status == 206, f"expected 206 Partial Content, got {status}"
    assert body == (model_dir / "config.json").read_bytes()[2:10]
    size = (model_dir / "config.json").stat().st_size
    assert headers["Content-Range"] == f"bytes 2-9/{size}"


def test_lfs_file_head_has_linked_size_and_no_xet_header(
    fake_hub: FakeHub, model_dir: Path
) -> None:
    url = f"{fake_hub.url}/{PUBLIC_REPO}/resolve/main/model.safetensors"
    status, headers, _ = fetch(url, method="HEAD")
    assert status == 200
    assert headers["X-Linked-Size"] == str((model_dir / "model.safetensors").stat().st_size)
    assert headers["X-Repo-Commit"] == fake_hub.commit_of(PUBLIC_REPO)
    xet = [name for name in headers if name.lower().startswith("x-xet")]
    assert xet == [], f"no Xet header should be sent, got {xet}"


def test_missing_file_is_entry_not_found(fake_hub: FakeHub) -> None:
    status, headers, _ = fetch(f"{fake_hub.url}/{PUBLIC_REPO}/resolve/main/nope.bin")
    assert (status, headers.get("X-Error-Code")) == (404, "EntryNotFound")


def test_unknown_route_is_404_json(fake_hub: FakeHub) -> None:
    status, _, body = fetch(f"{fake_hub.url}/no/such/route")
    assert (status, json.loads(body)) == (404, {"error": "Not Found"})


def test_private_repo_hidden_from_anonymous_callers(fake_hub: FakeHub) -> None:
    status, headers, _ = fetch(f"{fake_hub.url}/api/models/{PRIVATE_REPO}/revision/main")
    assert (status, headers.get("X-Error-Code")) == (401, "RepoNotFound")


def test_commit_resolves_like_main(fake_hub: FakeHub) -> None:
    commit = fake_hub.commit_of(PUBLIC_REPO)
    status, _, body = fetch(f"{fake_hub.url}/api/models/{PUBLIC_REPO}/revision/{commit}")
    assert (status, json.loads(body)["sha"]) == (200, commit)


def test_a_request_is_logged_when_its_body_starts_not_when_it_ends(
    model_dir: Path, tmp_path: Path
) -> None:
    # Molecule's interrupted-prefetch test kills a client mid-body and then restarts the
    # hub: the record of that GET must already be in the log by then.
    with running_fake_hub(model_dir, tmp_path, options=["--throttle", "100000"]) as hub:
        mark = hub.log_mark()
        host, port = hub.url.removeprefix("http://").rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request("GET", f"/{PUBLIC_REPO}/resolve/main/model.safetensors")
            response = connection.getresponse()
            assert response.status == 200
            assert len(response.read(1024)) == 1024  # the body has begun; ~90 MB to go
            logged = [
                (record["method"], record["path"].rsplit("/", 1)[1], record["status"])
                for record in hub.requests_since(mark)
            ]
        finally:
            connection.close()
    assert logged == [("GET", "model.safetensors", 200)]


def test_sigterm_stops_it_cleanly(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "config.json").write_text("{}")
    process = subprocess.Popen(
        [sys.executable, str(FAKE_HUB), "--port", "0", "--repo", f"a/b={tmp_path / 'repo'}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith(READY_PREFIX)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0, "SIGTERM should stop the hub with exit code 0"


@pytest.mark.parametrize(
    "args",
    [
        ["--repo", "a/b=/nonexistent-dir"],
        ["--repo", "not-an-id=/tmp"],
        [],
    ],
)
def test_bad_command_line_exits_2_with_one_line(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, str(FAKE_HUB), "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, f"expected exit 2, got {result.returncode}"
    assert len(result.stderr.splitlines()) == 1, f"expected one line: {result.stderr!r}"
