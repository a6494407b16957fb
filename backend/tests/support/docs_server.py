"""The backend under uvicorn on a free loopback port, for checks through a real browser and
with several workers."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI

from src.api import collections, documents, health, models
from src.api import embeddings as embeddings_api
from tests.support.net import closed_port, free_port
from tests.support.runners import BACKEND_DIR, base_env


def cdn_docs_app() -> FastAPI:
    """The backend's routes behind FastAPI's stock /docs, which loads Swagger UI from a CDN:
    what the docs page was before it was served from the image (a uvicorn --factory)."""
    app = FastAPI(title="nica-pro backend, stock docs")
    for router in (health, models, collections, embeddings_api, documents):
        app.include_router(router.router)
    return app


def _wait_until_serving(
    url: str, process: subprocess.Popen[str], timeout: float, output: Path | None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, stderr = process.communicate()
            said = output.read_text() if output is not None else stderr
            raise AssertionError(f"uvicorn exited {process.returncode}: {said.strip()}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (loopback http)
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise AssertionError(f"uvicorn did not answer {url} within {timeout:.0f} s")


@contextmanager
def serving(
    hf_home: Path,
    app: str = "src.main:app",
    timeout: float = 30,
    environ: Mapping[str, str] | None = None,
    workers: int = 1,
    output: Path | None = None,
) -> Iterator[str]:
    """uvicorn with `app` (the image's src.main:app by default) on 127.0.0.1 with `workers`
    worker processes; yields its base URL. By default no models and an unreachable database
    (the docs page needs neither); `environ` adds to or replaces the variables. `output`:
    a file that gets everything the server writes (stdout and stderr), complete once the
    block has ended."""
    port = free_port()
    env = base_env(
        DATABASE_URL=f"postgresql+psycopg://app@127.0.0.1:{closed_port()}/app",
        HF_HOME=str(hf_home),
        UVICORN_WORKERS=str(workers),
    )
    env.update(environ or {})
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers)]
    if not app.endswith(":app"):
        command.append("--factory")
    sink = output.open("w") if output is not None else None
    process = subprocess.Popen(
        command,
        cwd=BACKEND_DIR,
        env=env,
        stdout=sink or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if sink else subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(f"{base}/openapi.json", process, timeout, output)
        yield base
    finally:
        process.terminate()
        process.communicate(timeout=10)
        if sink is not None:
            sink.close()
