"""The image's entrypoint (docker/entrypoint.sh serve) starts the metrics process next to uvicorn.

Run here as the image runs it, from backend/ (the image's /app), with the backend's Python on
PATH; only uvicorn is a stand-in (a script that notes its environment and waits), so what is
checked is the entrypoint's own part: the metrics folder emptied and exported, the metrics
process serving on METRICS_PORT and started again when it exits, METRICS_ENABLED=0, and a bad
METRICS_PORT refused with one line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import closed_port, free_port
from tests.support.runners import BACKEND_DIR, base_env

ENTRYPOINT = BACKEND_DIR.parent / "docker" / "entrypoint.sh"
STAND_IN = """#!/bin/sh
env > "$NOTED_ENV"
exec sleep 600
"""


@dataclass(frozen=True)
class Started:
    process: subprocess.Popen[str]
    metrics_url: str
    noted_env: Path

    def environment(self, timeout: float = 30) -> dict[str, str]:
        """The environment uvicorn (the stand-in) was started with."""
        deadline = time.monotonic() + timeout
        while not self.noted_env.exists() or not self.noted_env.read_text():
            assert self.process.poll() is None, self.process.communicate()[1]
            assert time.monotonic() < deadline, "the entrypoint did not start uvicorn"
            time.sleep(0.05)
        lines = self.noted_env.read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)


@contextmanager
def entrypoint(tmp_path: Path, **env: str) -> Iterator[Started]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "uvicorn").write_text(STAND_IN)
    (bin_dir / "uvicorn").chmod(0o755)
    port = env.pop("METRICS_PORT", None) or str(free_port())
    environ = base_env(
        PATH=f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin",
        NOTED_ENV=str(tmp_path / "uvicorn.env"),
        DATABASE_URL=f"postgresql+psycopg://app@127.0.0.1:{closed_port()}/app",
        HF_PREFETCH_ON_START="0",
        METRICS_PORT=port,
        **env,
    )
    process = subprocess.Popen(
        ["bash", str(ENTRYPOINT), "serve"],
        cwd=BACKEND_DIR,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the metrics loop goes with it
    )
    try:
        yield Started(process, f"http://127.0.0.1:{port}", tmp_path / "uvicorn.env")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=10)


def metrics_text(url: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:  # noqa: S310
                return str(answer.read().decode())
        except (urllib.error.URLError, OSError):
            assert time.monotonic() < deadline, f"nothing serves {url}/metrics"
            time.sleep(0.1)


def metrics_pid(tmp_path: Path) -> int:
    """The metrics process's PID (its command line names the module)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            b"src.metrics.server" in command
            and (proc / "environ").read_bytes().find(str(tmp_path).encode()) >= 0
        ):
            return int(proc.name)
    raise AssertionError("no metrics process found")


def test_serve_empties_the_metrics_folder_and_serves_metrics(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_12345.db").write_bytes(b"a previous run's counts")
    with entrypoint(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(folder), NICA_SLOT="blue") as started:
        environment = started.environment()
        text = metrics_text(started.metrics_url)
    assert environment["PROMETHEUS_MULTIPROC_DIR"] == str(folder), "uvicorn's workers write there"
    assert folder.is_dir() and not list(folder.iterdir()), "emptied before uvicorn started"
    assert 'nica_release_info{release="unknown",slot="blue"} 1.0' in text
    assert "nica_ready 0.0" in text, "uvicorn is a stand-in here: it never answers /readyz"


def test_the_metrics_process_is_started_again_when_it_exits(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    with entrypoint(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(folder)) as started:
        metrics_text(started.metrics_url)
        first = metrics_pid(tmp_path)
        os.kill(first, signal.SIGKILL)
        time.sleep(0.5)
        text = metrics_text(started.metrics_url, timeout=15)
        second = metrics_pid(tmp_path)
    assert second != first and "nica_ready" in text


def test_metrics_enabled_0_starts_no_metrics_process(tmp_path: Path) -> None:
    with entrypoint(
        tmp_path, METRICS_ENABLED="0", PROMETHEUS_MULTIPROC_DIR=str(tmp_path)
    ) as started:
        environment = started.environment()
        time.sleep(1)
        try:
            urllib.request.urlopen(started.metrics_url + "/metrics", timeout=2)  # noqa: S310
            served = True
        except (urllib.error.URLError, OSError):
            served = False
    assert "PROMETHEUS_MULTIPROC_DIR" not in environment, "the workers record nothing"
    assert not served, "nothing listens on METRICS_PORT"


def test_metrics_on_the_public_port_is_refused_in_one_line(tmp_path: Path) -> None:
    with entrypoint(tmp_path, METRICS_PORT="8000") as started:
        _, stderr = started.process.communicate(timeout=30)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert started.process.returncode == 2
    assert errors == ["error: METRICS_PORT must be a port (1..65535) other than 8000, got 8000"]
