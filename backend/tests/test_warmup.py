"""Warm-up before ready (src.warmup): /readyz says ready only after this worker ran one
inference per loaded model and one search statement, through the app's lifespan."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from tokenizers import Encoding

from src import worker_readiness
from src.app import create_app
from src.embeddings import Encoder
from src.embeddings.functional import F32
from src.warmup import OFF
from tests.conftest import Database, Prefetched
from tests.support.database import migrated_and_seeded
from tests.support.embeddings import cached_load
from tests.support.fake_hub import PUBLIC_REPO
from tests.support.postgres import PostgresCluster


class CountingEncoder(Encoder):
    """The real encoder; counts its forward passes."""

    def __init__(self, encoder: Encoder) -> None:
        self.__dict__.update(encoder.__dict__)
        self.passes = 0
        self.lock = threading.Lock()

    def forward(self, encodings: Sequence[Encoding]) -> F32:
        with self.lock:
            self.passes += 1
        return super().forward(encodings)


def counting(into: list[CountingEncoder]) -> Callable[[Path, str | None], Encoder]:
    def load(path: Path, onnx_file: str | None = None) -> Encoder:
        encoder = CountingEncoder(cached_load(path, onnx_file))
        into.append(encoder)
        return encoder

    return load


@pytest.fixture
def database(pg_cluster: PostgresCluster, app_password_file: Path, tmp_path: Path) -> Database:
    """A migrated and seeded database of this test's own (one test revokes a privilege)."""
    name = pg_cluster.create_database()
    database = Database(name, pg_cluster.app_url(name), app_password_file, pg_cluster)
    migrated_and_seeded(database.settings(tmp_path))
    return database


def no_backfill(database: Database) -> None:
    """No document without an embedding: the start-up backfill would run forward passes, in
    the loader thread, which may outlive the test (a later test that forks while it runs
    NumPy can deadlock)."""
    database.cluster.execute(sql.SQL("DELETE FROM documents"), database.name)


def first_ready(client: TestClient, timeout: float = 60) -> dict[str, str]:
    """/readyz's checks at its first 200; every 503 before it must name a check."""
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get("/readyz")
        if answer.status_code == 200:
            checks: dict[str, str] = answer.json()["checks"]
            return checks
        assert time.monotonic() < deadline, f"not ready after {timeout} s: {answer.text}"
        time.sleep(0.01)


def test_ready_only_after_an_inference_of_each_model(
    database: Database, prefetched: Prefetched
) -> None:
    no_backfill(database)
    encoders: list[CountingEncoder] = []
    settings = database.settings(prefetched.hf_home, models=PUBLIC_REPO)
    with TestClient(create_app(settings, load_encoder=counting(encoders))) as client:
        checks = first_ready(client)
        passes = encoders[0].passes
    assert checks["warmup"] == "ok"
    assert passes >= 1, "the model ran a forward pass before /readyz said ready"


def test_ready_only_once_the_search_statement_runs(
    database: Database, prefetched: Prefetched
) -> None:
    no_backfill(database)
    revoke = sql.SQL("REVOKE SELECT ON documents FROM app")
    database.cluster.execute(revoke, database.name)
    settings = database.settings(prefetched.hf_home, models=PUBLIC_REPO)
    with TestClient(create_app(settings, load_encoder=cached_load)) as client:
        deadline = time.monotonic() + 60
        while "failed" not in (warmup := client.get("/readyz").json()["checks"]["warmup"]):
            assert time.monotonic() < deadline, warmup
            time.sleep(0.05)
        unready = client.get("/readyz")
        database.cluster.execute(sql.SQL("GRANT SELECT ON documents TO app"), database.name)
        started = time.monotonic()
        checks = first_ready(client, timeout=10)
        waited = time.monotonic() - started
    assert unready.status_code == 503
    assert unready.json()["checks"]["warmup"] == (
        "search statement failed (retried every 1 s): permission denied for table documents"
    )
    assert checks["warmup"] == "ok"
    assert waited < 3, f"ready within a retry once the statement can run, took {waited:.1f} s"


def test_warm_up_off_is_ready_without_an_inference(
    database: Database, prefetched: Prefetched
) -> None:
    no_backfill(database)
    encoders: list[CountingEncoder] = []
    settings = database.settings(prefetched.hf_home, models=PUBLIC_REPO, WARMUP_BEFORE_READY="0")
    with TestClient(create_app(settings, load_encoder=counting(encoders))) as client:
        checks = first_ready(client)
        passes = encoders[0].passes
    assert checks["warmup"] == OFF == "off (WARMUP_BEFORE_READY=0)"
    assert passes == 0, "no forward pass before ready"


def test_with_several_workers_a_worker_tells_the_others_only_once_warmed_up(
    database: Database,
    prefetched: Prefetched,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marks = tmp_path / "marks"
    monkeypatch.setattr(worker_readiness, "MARKS", marks)
    no_backfill(database)
    database.cluster.execute(sql.SQL("REVOKE SELECT ON documents FROM app"), database.name)
    settings = database.settings(prefetched.hf_home, models=PUBLIC_REPO, UVICORN_WORKERS="2")
    mark = marks / str(os.getpid())
    with TestClient(create_app(settings, load_encoder=cached_load)) as client:
        deadline = time.monotonic() + 60
        while "failed" not in client.get("/readyz").json()["checks"]["warmup"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.5)  # a retry of the search statement, still failing
        noted_while_failing = mark.exists()
        database.cluster.execute(sql.SQL("GRANT SELECT ON documents TO app"), database.name)
        deadline = time.monotonic() + 10
        while not mark.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not noted_while_failing, "no note to the other workers before the warm-up ran"
    assert mark.exists(), "noted once the warm-up ran"
