"""The fake Hugging Face Hub (testing/fake_hub/fake_hf_hub.py) as a subprocess."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parents[3]
FAKE_HUB = REPO_DIR / "testing" / "fake_hub" / "fake_hf_hub.py"
PUBLIC_REPO = "sentence-transformers/all-MiniLM-L6-v2"
PRIVATE_REPO = "nica/private-minilm"
READY_PREFIX = "fake hub listening on "


@dataclass
class FakeHub:
    url: str
    log_path: Path
    token: str
    process: subprocess.Popen[str]

    def log_mark(self) -> int:
        """Number of logged requests so far; pass it to requests_since()."""
        return len(self.requests_since(0))

    def requests_since(self, mark: int) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines[mark:]]

    def commit_of(self, repo_id: str) -> str:
        """The commit the hub reports for `main`, asked over HTTP like any client."""
        request = urllib.request.Request(  # noqa: S310 - http on loopback only
            f"{self.url}/api/models/{repo_id}/revision/main",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return str(json.load(response)["sha"])


def _read_ready_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            return process.stdout.readline().strip()
        if process.poll() is not None:
            break
    stderr = process.stderr.read() if process.stderr and process.poll() is not None else ""
    raise RuntimeError(f"the fake hub did not start: {stderr.strip() or 'no ready line'}")


@contextmanager
def running_fake_hub(
    model_dir: Path,
    work_dir: Path,
    extra_repos: Sequence[str] = (),
    options: Sequence[str] = (),
    public_dir: Path | None = None,
) -> Iterator[FakeHub]:
    """Serve public_dir (default model_dir) as PUBLIC_REPO and, token-protected, model_dir as
    PRIVATE_REPO.

    extra_repos: more `ID=DIR[:private]` values; options: more command-line options (faults).
    """
    token = "hf_fake_" + "0123456789abcdef" * 2
    token_file = work_dir / "hub-token"
    token_file.write_text(token + "\n")
    log_path = work_dir / "hub-requests.jsonl"
    command = [sys.executable, str(FAKE_HUB), "--bind", "127.0.0.1", "--port", "0"]
    command += ["--repo", f"{PUBLIC_REPO}={public_dir or model_dir}"]
    command += ["--repo", f"{PRIVATE_REPO}={model_dir}:private"]
    command += ["--token-file", str(token_file), "--log", str(log_path)]
    for repo in extra_repos:
        command += ["--repo", repo]
    command += options
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _read_ready_line(process, timeout=60)
        if not line.startswith(READY_PREFIX):
            raise RuntimeError(f"unexpected first line from the fake hub: {line!r}")
        yield FakeHub(line[len(READY_PREFIX) :], log_path, token, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
