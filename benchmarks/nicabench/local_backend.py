"""The backend of this checkout under uvicorn on 127.0.0.1, with the real model, no container:
for measurements that compare the same release with a switch on and off, side by side on this
machine (metrics_cost.py, warmup_bench.py).

The model cache is laid out from build/hub-data (the real all-MiniLM-L6-v2 files, fetched by
scripts/lib/bootstrap.sh) as the prefetch leaves it: huggingface_hub's layout plus the
manifest, written with the backend's own manifest code. With metrics on, the metrics process
(src.metrics.server) runs beside it, as the image's entrypoint starts it, and a scraper reads
/metrics and /summary every SCRAPE_EVERY_S, as a Prometheus and status.yml would.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from . import backend, host
from .anchors import MODEL_DIR, free_port

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
COMMIT = "0" * 40  # the snapshot's name in the cache; the files are the pinned ones
SCRAPE_EVERY_S = 5.0
START_TIMEOUT_S = 180.0


def hf_home(root: Path) -> Path:
    """An HF_HOME under `root` holding MODEL from MODEL_DIR (symlinks, as the Hub cache has)."""
    manifest = backend.module("model_cache.manifest")
    snapshot = manifest.snapshot_dir(root, MODEL, COMMIT)
    snapshot.mkdir(parents=True, exist_ok=True)
    files = []
    for path in sorted(p for p in MODEL_DIR.rglob("*") if p.is_file()):
        relative = path.relative_to(MODEL_DIR)
        link = snapshot / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(path)
        files.append(manifest.CachedFile(relative.as_posix(), path.stat().st_size))
    cached = manifest.CachedModel(MODEL, "main", COMMIT, tuple(files), manifest.now_utc())
    manifest.record(root, cached)
    return root


@dataclass(frozen=True)
class Served:
    port: int
    metrics_port: int | None  # None: metrics off


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (loopback)
        body: bytes = answer.read()
        return body


def _embeds(port: int) -> bool:
    body = json.dumps({"model": MODEL, "input": ["ready?"]}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/embeddings",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _scrape_until(stop: threading.Event, metrics_port: int) -> None:
    while not stop.wait(SCRAPE_EVERY_S):
        for path in ("/metrics", "/summary"):
            with contextlib.suppress(OSError):
                _get(f"http://127.0.0.1:{metrics_port}{path}")


@contextlib.contextmanager
def serving(
    home: Path,
    log: Path,
    *,
    metrics: bool,
    workers: int = 2,
    environ: Mapping[str, str] | None = None,
    wait_until: str = "embeds",
) -> Iterator[Served]:
    """uvicorn src.main:app with `workers` workers on a free 127.0.0.1 port, and with
    `metrics` the metrics process and its scraper. Yields once it answers POST /v1/embeddings
    (`wait_until="embeds"`) or /readyz with 200 (`"ready"`). Without `environ`'s DATABASE_URL
    it names a closed port: embeddings need no database (the warm-up's search keeps retrying,
    so /readyz stays 503)."""
    port = free_port()
    own = ("HF_", "PROMETHEUS", "DATABASE_", "WARMUP")
    env = {key: value for key, value in os.environ.items() if not key.startswith(own)}
    env.update(
        DATABASE_URL=f"postgresql+psycopg://app@127.0.0.1:{free_port()}/app",
        HF_HOME=str(home),
        HF_HUB_OFFLINE="1",
        HF_MODEL_REPOS=MODEL,
        UVICORN_WORKERS=str(workers),
    )
    env.update(environ or {})
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(log.open("wb"))
        metrics_port = None
        if metrics:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nica-metrics-")))
            env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
            metrics_port = free_port()
        uvicorn = [sys.executable, "-m", "uvicorn", "src.main:app", "--host", "127.0.0.1"]
        uvicorn += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
        processes = [
            subprocess.Popen(uvicorn, cwd=backend.BACKEND, env=env, stdout=out, stderr=out)
        ]
        stop = threading.Event()
        try:
            if metrics_port is not None:
                server = [sys.executable, "-m", "src.metrics.server", "--host", "127.0.0.1"]
                server += ["--port", str(metrics_port), "--backend-url", f"http://127.0.0.1:{port}"]
                processes.append(
                    subprocess.Popen(server, cwd=backend.BACKEND, env=env, stdout=out, stderr=out)
                )
            _wait(port, processes, log, wait_until)
            if metrics_port is not None:
                threading.Thread(
                    target=_scrape_until, args=(stop, metrics_port), daemon=True
                ).start()
            yield Served(port, metrics_port)
        finally:
            stop.set()
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait(port: int, processes: list[subprocess.Popen[bytes]], log: Path, until: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise host.HostError(f"a backend process exited {process.returncode}, see {log}")
        if until == "ready":
            with contextlib.suppress(OSError):
                _get(f"http://127.0.0.1:{port}/readyz")
                return
        elif _embeds(port):
            return
        time.sleep(0.05)
    raise host.HostError(f"the local backend did not serve in {START_TIMEOUT_S:.0f} s, see {log}")
