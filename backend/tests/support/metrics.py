"""The metrics process (src.metrics.server) as a subprocess, and reading what it serves."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.net import free_port
from tests.support.runners import BACKEND_DIR, base_env

# (sample name, its labels as sorted pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@contextmanager
def metrics_process(
    metrics_dir: Path,
    backend_url: str,
    environ: Mapping[str, str],
    documents_every: float = 1.0,
    timeout: float = 30,
) -> Iterator[str]:
    """`python -m src.metrics.server` on a free loopback port, as the entrypoint starts it;
    yields its base URL."""
    port = free_port()
    env = base_env(PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    env.update(environ)
    command = [sys.executable, "-m", "src.metrics.server", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--backend-url", backend_url]
    command += ["--documents-every", str(documents_every)]
    with tempfile.TemporaryFile() as log:  # its log lines, read if it exits early
        process = subprocess.Popen(
            command, cwd=BACKEND_DIR, env=env, stdout=subprocess.DEVNULL, stderr=log
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    raise AssertionError(f"the metrics process exited: {log.read().decode()}")
                try:
                    get(base + "/metrics")
                    break
                except (urllib.error.URLError, OSError):
                    assert time.monotonic() < deadline, f"no /metrics on {base} after {timeout} s"
                    time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=10)


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (loopback http)
        return str(answer.read().decode())


def scrape(base: str) -> Samples:
    """Every sample of one GET /metrics."""
    samples: Samples = {}
    for family in text_string_to_metric_families(get(base + "/metrics")):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def summary(base: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(get(base + "/summary"))
    return document


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (n, pairs), value in samples.items() if n == name and wanted <= set(pairs))


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(pairs)[label] for (n, pairs) in samples if n == name and label in dict(pairs)}
