"""The HTTP API through FastAPI's TestClient (the app's lifespan runs)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from fastapi.testclient import TestClient

from src.app import create_app
from src.database.migrations import head_revision
from src.model_cache.manifest import load_manifest
from src.settings import Settings
from tests.conftest import Database, Prefetched
from tests.support.embeddings import cached_load, readyz_after_loading
from tests.support.fake_hub import PUBLIC_REPO, FakeHub
from tests.support.net import closed_port
from tests.support.runners import base_env, run_python


@contextmanager
def client_for(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, load_encoder=cached_load)) as client:
        yield client


def unreachable(database: Database) -> str:
    return f"postgresql+psycopg://app@127.0.0.1:{closed_port()}/{database.name}"


# ---- /healthz


def test_healthz_answers_even_when_the_database_is_down(
    seeded_database: Database, tmp_path: Path
) -> None:
    settings = seeded_database.settings(tmp_path, url=unreachable(seeded_database))
    with client_for(settings) as client:
        response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


# ---- /readyz


def test_readyz_200_when_database_schema_and_models_are_ready(
    seeded_database: Database, prefetched: Prefetched
) -> None:
    settings = seeded_database.settings(prefetched.hf_home, models=PUBLIC_REPO)
    with client_for(settings) as client:
        response = readyz_after_loading(client)
    checks = {"database": "ok", "schema": "ok", "models": "ok", "embeddings": "ok", "warmup": "ok"}
    assert (response.status_code, response.json()) == (200, {"status": "ready", "checks": checks})


def test_readyz_503_names_schema_when_not_migrated(
    empty_database: Database, prefetched: Prefetched
) -> None:
    settings = empty_database.settings(prefetched.hf_home, models=PUBLIC_REPO)
    with client_for(settings) as client:
        response = readyz_after_loading(client)
    assert response.status_code == 503, f"expected 503, got {response.status_code}"
    body = response.json()
    assert body["status"] == "unready"
    assert body["checks"] == {
        "database": "ok",
        "schema": f"not migrated, head is {head_revision()}",
        "models": "ok",
        "embeddings": "ok",
        "warmup": "search statement failed (retried every 1 s): "
        'relation "documents" does not exist',
    }


def test_readyz_503_names_the_model_missing_from_the_cache(
    seeded_database: Database, tmp_path: Path
) -> None:
    settings = seeded_database.settings(tmp_path, models=PUBLIC_REPO)
    with client_for(settings) as client:
        response = readyz_after_loading(client)
    assert response.status_code == 503, f"expected 503, got {response.status_code}"
    assert response.json()["checks"] == {
        "database": "ok",
        "schema": "ok",
        "models": f"{PUBLIC_REPO}@main: not in the cache",
        "embeddings": f"{PUBLIC_REPO}@main: not loaded: not in the cache",
        "warmup": 'not run: not every model loaded (see "embeddings")',
    }


def test_readyz_503_names_database_when_it_is_down(
    seeded_database: Database, prefetched: Prefetched
) -> None:
    settings = seeded_database.settings(
        prefetched.hf_home, models=PUBLIC_REPO, url=unreachable(seeded_database)
    )
    with client_for(settings) as client:
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started
    assert response.status_code == 503, f"expected 503, got {response.status_code}"
    checks = response.json()["checks"]
    assert "Connection refused" in checks["database"], f"database check: {checks['database']}"
    assert checks["schema"] == "not checked: the database is unavailable", (
        f"schema check: {checks['schema']}"
    )
    assert checks["models"] == "ok"
    assert elapsed < 5, f"/readyz should answer fast when the database is down: {elapsed:.1f} s"


def test_readyz_never_shows_the_password(seeded_database: Database, tmp_path: Path) -> None:
    settings = seeded_database.settings(tmp_path, url=unreachable(seeded_database))
    with client_for(settings) as client:
        text = client.get("/readyz").text
    password = seeded_database.cluster.app_password
    assert password not in text, "the database password must not appear in /readyz"


# ---- /v1/models


def test_models_lists_the_cached_model_in_the_openai_shape(
    seeded_database: Database, prefetched: Prefetched, fake_hub: FakeHub
) -> None:
    settings = seeded_database.settings(prefetched.hf_home, models=PUBLIC_REPO)
    with client_for(settings) as client:
        readyz_after_loading(client)
        body = client.get("/v1/models").json()
    assert body["object"] == "list"
    [entry] = body["data"]
    cached = load_manifest(prefetched.hf_home)[PUBLIC_REPO]
    assert entry == {
        "id": PUBLIC_REPO,
        "object": "model",
        "created": int(datetime.fromisoformat(cached.fetched_at).timestamp()),
        "owned_by": "sentence-transformers",
        "revision": "main",
        "commit": fake_hub.commit_of(PUBLIC_REPO),
        "files": [{"path": f.path, "size": f.size} for f in cached.files],
        "bytes": cached.bytes,
        "runtime": "onnxruntime",
        "weights_file": "onnx/model.onnx",
    }


def test_a_model_by_its_repo_id_is_its_entry_of_the_list(
    seeded_database: Database, prefetched: Prefetched
) -> None:
    settings = seeded_database.settings(prefetched.hf_home, models=PUBLIC_REPO)
    with client_for(settings) as client:
        [listed] = client.get("/v1/models").json()["data"]
        response = client.get(f"/v1/models/{PUBLIC_REPO}")
    assert (response.status_code, response.json()) == (200, listed)


def test_an_unknown_model_id_is_404_naming_the_available_ones(
    seeded_database: Database, prefetched: Prefetched
) -> None:
    settings = seeded_database.settings(prefetched.hf_home, models=PUBLIC_REPO)
    with client_for(settings) as client:
        response = client.get("/v1/models/org/other")
    assert (response.status_code, response.json()) == (
        404,
        {
            "error": {
                "message": f"model 'org/other' not found; available models: {PUBLIC_REPO}",
                "type": "invalid_request_error",
                "param": "model",
                "code": "model_not_found",
            }
        },
    )


def test_a_configured_model_missing_from_the_cache_is_404_saying_so(
    seeded_database: Database, tmp_path: Path
) -> None:
    settings = seeded_database.settings(tmp_path, models=PUBLIC_REPO)
    with client_for(settings) as client:
        response = client.get(f"/v1/models/{PUBLIC_REPO}")
    assert response.status_code == 404, f"expected 404, got {response.status_code}"
    assert response.json()["error"]["message"] == (
        f"model '{PUBLIC_REPO}' is configured but not usable from the cache: not in the cache"
    )


def test_models_omits_a_model_not_in_the_cache(seeded_database: Database, tmp_path: Path) -> None:
    settings = seeded_database.settings(tmp_path, models=PUBLIC_REPO)
    with client_for(settings) as client:
        body = client.get("/v1/models").json()
    assert body == {"object": "list", "data": []}


# ---- /v1/collections


def test_collections_lists_the_seeded_collection_with_its_count(seeded_database: Database) -> None:
    with client_for(seeded_database.settings(Path("/nonexistent"))) as client:
        response = client.get("/v1/collections")
    assert response.status_code == 200, f"expected 200, got {response.status_code}"
    [entry] = response.json()["data"]
    assert (entry["name"], entry["document_count"]) == ("default", 3)


def test_collections_503_when_the_database_is_down(seeded_database: Database) -> None:
    settings = seeded_database.settings(Path("/nonexistent"), url=unreachable(seeded_database))
    with client_for(settings) as client:
        response = client.get("/v1/collections")
    assert response.status_code == 503, f"expected 503, got {response.status_code}"
    assert response.json()["error"]["message"].startswith("database unavailable: "), (
        f"expected the reason in OpenAI's error shape, got {response.text}"
    )


# ---- src.main, the uvicorn entry point


def test_serving_code_does_not_import_huggingface_hub(seeded_database: Database) -> None:
    code = "import sys, src.main; print('huggingface_hub' in sys.modules)"
    env = base_env(DATABASE_URL=seeded_database.url, HF_MODEL_REPOS=PUBLIC_REPO)
    result = run_python(["-c", code], env)
    assert result.returncode == 0, f"importing src.main failed: {result.stderr}"
    assert result.stdout.strip() == "False", "serving must not load huggingface_hub"


def test_main_sets_blas_threads_before_numpy_loads(seeded_database: Database) -> None:
    code = (
        "import sys; assert 'numpy' not in sys.modules; import os, src.main; "
        "print(os.environ['OPENBLAS_NUM_THREADS'])"
    )
    env = base_env(DATABASE_URL=seeded_database.url, UVICORN_WORKERS="999")
    result = run_python(["-c", code], env)
    assert (result.returncode, result.stdout.strip()) == (0, "1"), (
        f"each forward pass gets 1 BLAS thread, got: {result.stdout} {result.stderr}"
    )


def test_main_with_bad_configuration_exits_2_with_one_line() -> None:
    result = run_python(["-c", "import src.main"], base_env(HF_MODEL_REPOS="bad"))
    assert result.returncode == 2, f"expected exit 2, got {result.returncode}"
    assert result.stderr.splitlines() == [
        "error: DATABASE_URL is not set (e.g. postgresql+psycopg://app@postgres:5432/app)"
    ]
