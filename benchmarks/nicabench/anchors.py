"""The anchors the embeddings figures stand next to, on this machine, from the same model files:
Infinity (`infinity_emb v2`, torch on CPU) on a 127.0.0.1 port, and sentence-transformers
in-process (st_worker.py). Both live in a venv this benchmark makes under build/ (never a
runtime dependency); pip finds torch's CPU wheel in the machine's local wheel folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from . import host
from .options import REPO
from .stats import Block

VENV = REPO / "build" / "bench" / "anchors-venv"
MODEL_DIR = REPO / "build" / "hub-data" / "all-MiniLM-L6-v2"
# Exact pins: the same anchors run to run. torch==2.13.0 also matches the local +cpu build,
# which pip then prefers (a local version sorts after the plain one).
REQUIREMENTS = (
    "infinity-emb[server,torch]==0.0.78",
    "sentence-transformers==3.4.1",
    "torch==2.13.0",
)
STAMP = VENV / ".benchmark-requirements"


def ensure_venv() -> Path:
    """The anchors' venv (made once, again when REQUIREMENTS change); its python."""
    python = VENV / "bin" / "python"
    want = "\n".join(REQUIREMENTS)
    if python.exists() and STAMP.exists() and STAMP.read_text() == want:
        return python
    host.say(f"anchors: installing {', '.join(REQUIREMENTS)} into {VENV} (once)")
    host.run([sys.executable, "-m", "venv", str(VENV)], "python -m venv")
    host.run(
        [str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
        "pip install of the anchors",
        log=REPO / "build" / "reports" / "benchmark-anchors-pip.log",
    )
    STAMP.write_text(want)
    return python


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def infinity(python: Path, log: Path) -> Iterator[tuple[int, str]]:
    """Infinity serving MODEL_DIR on a free 127.0.0.1 port: (port, its model id)."""
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(python.parent / "infinity_emb"),
                "v2",
                "--model-id",
                str(MODEL_DIR),
                "--engine",
                "torch",
                "--device",
                "cpu",
                "--url-prefix",
                "/v1",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"},
        )
        try:
            yield port, _wait_for_model(port, process, log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_model(port: int, process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise host.HostError(f"Infinity exited {process.returncode}, see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as answer:
                models = json.load(answer)["data"]
                return str(models[0]["id"])
        except (OSError, ValueError, KeyError, IndexError):
            time.sleep(2)
    raise host.HostError(f"Infinity did not serve its model within 300 s, see {log}")


class SentenceTransformersWorker:
    """st_worker.py in the anchors' venv, kept running between blocks."""

    def __init__(self, python: Path, log: Path) -> None:
        self._log = log.open("wb")
        self._process = subprocess.Popen(
            [str(python), str(Path(__file__).with_name("st_worker.py")), str(MODEL_DIR)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.description = str(self._reply()["ready"])

    def _reply(self) -> dict[str, object]:
        stdout: IO[str] | None = self._process.stdout
        line = stdout.readline() if stdout is not None else ""
        if not line:
            raise host.HostError(f"the sentence-transformers worker stopped, see {self._log.name}")
        reply: dict[str, object] = json.loads(line)
        return reply

    def encode(self, batch: int, calls: int, seconds: float, sentences: list[str]) -> Block:
        """`calls` encodes of `batch` sentences each (at most about `seconds`), timed."""
        stdin = self._process.stdin
        if stdin is None:
            raise host.HostError("the sentence-transformers worker has no input")
        command = {"batch": batch, "calls": calls, "seconds": seconds, "sentences": sentences}
        stdin.write(json.dumps(command) + "\n")
        stdin.flush()
        reply = self._reply()
        latencies = reply["latencies_s"]
        if not isinstance(latencies, list):
            raise host.HostError(f"the sentence-transformers worker answered {reply}")
        return Block(tuple(float(value) for value in latencies), 0, float(str(reply["wall_s"])))

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()
