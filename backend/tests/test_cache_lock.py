"""A locked (or unmounted) encrypted model cache: HF_CACHE_MARKER, /readyz and the entrypoint."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from src.app import create_app
from src.model_cache.lock import locked_reason
from src.settings import ConfigError, Settings
from tests.conftest import Database, Prefetched
from tests.support.embeddings import cached_load
from tests.support.fake_hub import PUBLIC_REPO
from tests.support.runners import BACKEND_DIR, base_env

MARKER = ".model-cache-unlocked"
ENTRYPOINT = BACKEND_DIR.parent / "docker" / "entrypoint.sh"
BASE_URL = "postgresql+psycopg://app@postgres:5432/app"


def test_settings_read_the_marker_name() -> None:
    settings = Settings.from_env({"DATABASE_URL": BASE_URL, "HF_CACHE_MARKER": MARKER})
    assert settings.hf_cache_marker == MARKER


def test_settings_default_to_no_marker() -> None:
    assert Settings.from_env({"DATABASE_URL": BASE_URL}).hf_cache_marker == ""


@pytest.mark.parametrize("value", ["sub/marker", "/abs", "..", "."])
def test_settings_reject_a_marker_that_is_not_a_file_name(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^HF_CACHE_MARKER"):
        Settings.from_env({"DATABASE_URL": BASE_URL, "HF_CACHE_MARKER": value})


def test_no_marker_configured_means_no_lock_check(tmp_path: Path) -> None:
    assert locked_reason(tmp_path / "missing", "") is None


def test_present_marker_means_unlocked(tmp_path: Path) -> None:
    (tmp_path / MARKER).write_text("unlocked\n")
    assert locked_reason(tmp_path, MARKER) is None


def test_missing_marker_means_locked(tmp_path: Path) -> None:
    reason = locked_reason(tmp_path, MARKER)
    assert reason == f"model cache locked or not mounted: {tmp_path / MARKER} is missing"


def test_readyz_503_says_model_cache_locked_even_with_a_warm_cache(
    seeded_database: Database, prefetched: Prefetched
) -> None:
    # The manifest and snapshot are there, the marker is not: never serve from it.
    settings = dataclasses.replace(
        seeded_database.settings(prefetched.hf_home, models=PUBLIC_REPO), hf_cache_marker=MARKER
    )
    with TestClient(create_app(settings, load_encoder=cached_load)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503, f"expected 503, got {response.status_code}"
    models = response.json()["checks"]["models"]
    assert models.startswith("model cache locked"), f"models check: {models}"


def _entrypoint(command: str, hf_home: Path) -> subprocess.CompletedProcess[str]:
    env = base_env(HF_HOME=str(hf_home), HF_CACHE_MARKER=MARKER, HF_MODEL_REPOS="")
    return subprocess.run(
        ["bash", str(ENTRYPOINT), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("command", ["serve", "prepare", "prefetch"])
def test_entrypoint_refuses_a_locked_cache(command: str, tmp_path: Path) -> None:
    result = _entrypoint(command, tmp_path)
    assert result.returncode == 3, f"{command}: expected exit 3, got {result.returncode}"
    assert result.stderr.splitlines()[-1].startswith(
        "error: model cache locked or not mounted: "
    ), f"{command}: last stderr line {result.stderr.splitlines()[-1:]}"


def test_entrypoint_goes_on_when_the_cache_is_unlocked(tmp_path: Path) -> None:
    (tmp_path / MARKER).write_text("unlocked\n")
    result = _entrypoint("prefetch", tmp_path)
    assert result.returncode == 0, f"expected exit 0, got {result.returncode}: {result.stderr}"
    assert "HF_MODEL_REPOS is empty" in result.stderr
