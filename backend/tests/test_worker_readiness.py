"""Readiness across uvicorn workers (src.worker_readiness): real processes, siblings of one
parent as uvicorn's workers are of its supervisor, and the app's /readyz with two workers."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient

from src import worker_readiness
from src.app import create_app
from src.worker_readiness import MARKS, mark_loaded, status
from tests.conftest import Database, Prefetched
from tests.support.docs_server import serving
from tests.support.embeddings import cached_load, readyz_after_loading
from tests.support.fake_hub import PUBLIC_REPO

FORK = multiprocessing.get_context("fork")
NOT_YET = "loaded in 1 of 2 uvicorn workers (UVICORN_WORKERS)"


def checked_by_a_sibling(marks: Path, other: Callable[[], None], *, other_lives: bool) -> str:
    """status(2) as a worker that has loaded sees it, while (or after) its sibling ran `other`."""
    checked = FORK.Queue()
    other_done, check_done = FORK.Event(), FORK.Event()

    def sibling() -> None:
        other()
        other_done.set()
        if other_lives:
            check_done.wait(timeout=30)

    def worker() -> None:
        mark_loaded(marks)
        checked.put(status(2, marks))

    first = FORK.Process(target=sibling)
    first.start()
    assert other_done.wait(timeout=30), "the sibling process did not run"
    if not other_lives:
        first.join(timeout=30)  # gone (reaped), as a worker that died and was replaced
    second = FORK.Process(target=worker)
    second.start()
    try:
        return str(checked.get(timeout=30))
    finally:
        check_done.set()
        first.join(timeout=30)
        second.join(timeout=30)


def test_ready_when_every_worker_has_loaded(tmp_path: Path) -> None:
    result = checked_by_a_sibling(tmp_path, lambda: mark_loaded(tmp_path), other_lives=True)
    assert result == "ok"


def test_not_ready_while_a_sibling_is_still_loading(tmp_path: Path) -> None:
    assert checked_by_a_sibling(tmp_path, lambda: None, other_lives=True) == NOT_YET


def test_a_worker_that_died_after_loading_no_longer_counts(tmp_path: Path) -> None:
    result = checked_by_a_sibling(tmp_path, lambda: mark_loaded(tmp_path), other_lives=False)
    assert result == NOT_YET


def test_a_live_process_that_is_not_a_sibling_does_not_count(tmp_path: Path) -> None:
    # The test process is the workers' parent, not their sibling (as uvicorn's supervisor).
    (tmp_path / str(os.getpid())).touch()
    assert checked_by_a_sibling(tmp_path, lambda: None, other_lives=True) == NOT_YET


def test_one_worker_reads_and_writes_nothing(tmp_path: Path) -> None:
    marks = tmp_path / "never-made"
    assert status(1, marks) == "ok"
    assert not marks.exists()


def test_readyz_with_two_workers_waits_for_the_other(
    seeded_database: Database,
    prefetched: Prefetched,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_readiness, "MARKS", tmp_path / "marks")
    settings = seeded_database.settings(prefetched.hf_home, models=PUBLIC_REPO)
    two = dataclasses.replace(settings, uvicorn_workers=2)
    with TestClient(create_app(two, load_encoder=cached_load)) as client:
        response = readyz_after_loading(client)
    assert response.status_code == 503, response.text
    assert response.json()["checks"]["embeddings"] == NOT_YET
    # Noted right after loading, in the loader thread: /readyz may have answered just before.
    mark = tmp_path / "marks" / str(os.getpid())
    deadline = time.monotonic() + 10
    while not mark.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mark.exists(), "this worker noted it loaded"


def test_uvicorn_with_two_workers_becomes_ready_and_both_serve(
    seeded_database: Database, prefetched: Prefetched, tmp_path: Path
) -> None:
    environ = {
        "DATABASE_URL": seeded_database.url,
        "DATABASE_PASSWORD_FILE": str(seeded_database.password_file),
        "HF_MODEL_REPOS": PUBLIC_REPO,
        "TMPDIR": str(tmp_path),  # the workers' notes in a folder of this test's own
    }
    marks = tmp_path / MARKS.name
    with serving(prefetched.hf_home, environ=environ, workers=2, timeout=60) as base:
        with httpx2.Client(base_url=base, timeout=30) as client:
            readiness = readyz_after_loading(client)
            deadline = time.monotonic() + 60
            while readiness.status_code != 200 and time.monotonic() < deadline:
                assert readiness.json()["checks"]["embeddings"] in ("ok", NOT_YET), readiness.text
                time.sleep(0.1)
                readiness = client.get("/readyz")
            assert readiness.status_code == 200, readiness.text
        # A new connection each: the kernel hands them to both workers; none may be loading.
        statuses = []
        for _ in range(20):
            with httpx2.Client(base_url=base, timeout=30) as fresh:
                statuses.append(
                    fresh.post(
                        "/v1/embeddings", json={"input": "x", "model": PUBLIC_REPO}
                    ).status_code
                )
        loaded = [mark for mark in marks.iterdir() if mark.name.isdigit() and alive(mark.name)]
    assert statuses == [200] * 20, f"every request served once ready: {statuses}"
    assert len(loaded) == 2, f"both workers noted they loaded: {sorted(marks.iterdir())}"


def alive(pid: str) -> bool:
    return Path(f"/proc/{pid}").exists()
