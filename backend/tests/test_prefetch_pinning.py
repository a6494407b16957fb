"""Pinning a revision per repo (`org/name@revision`), end to end against the fake Hub."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from src.model_cache.manifest import verify
from src.model_spec import ModelSpec
from tests.support.fake_hub import PUBLIC_REPO, FakeHub, running_fake_hub
from tests.support.runners import run_prefetch

TAG = "v1.0"


@pytest.fixture(scope="module")
def tagged_hub(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    """The hub where tag TAG also resolves to each repo's commit."""
    with running_fake_hub(
        model_dir, tmp_path_factory.mktemp("tagged-hub"), options=["--ref", TAG]
    ) as hub:
        yield hub


def pinned(hub: FakeHub, hf_home: Path, revision: str) -> subprocess.CompletedProcess[str]:
    result = run_prefetch(
        hub_url=hub.url,
        hf_home=hf_home,
        repos=f"{PUBLIC_REPO}@{revision}",
        token_file=hf_home / "no-token",
        revision="no-such-branch",  # HF_REVISION must not matter for a pinned entry
    )
    assert result.returncode == 0, f"the pinned prefetch should succeed: {result.stderr}"
    return result


def manifest_entry(hf_home: Path) -> dict[str, object]:
    entry = json.loads((hf_home / "prefetch-manifest.json").read_text())["models"][PUBLIC_REPO]
    assert isinstance(entry, dict)
    return entry


@pytest.fixture(scope="module")
def by_commit(tagged_hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> Path:
    hf_home = tmp_path_factory.mktemp("hf-home-commit")
    pinned(tagged_hub, hf_home, tagged_hub.commit_of(PUBLIC_REPO))
    return hf_home


@pytest.fixture(scope="module")
def by_tag(tagged_hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> Path:
    hf_home = tmp_path_factory.mktemp("hf-home-tag")
    pinned(tagged_hub, hf_home, TAG)
    return hf_home


def test_full_commit_pin_records_that_commit(by_commit: Path, tagged_hub: FakeHub) -> None:
    commit = tagged_hub.commit_of(PUBLIC_REPO)
    entry = manifest_entry(by_commit)
    assert (entry["revision"], entry["commit"]) == (commit, commit)


def test_full_commit_pin_verifies(by_commit: Path, tagged_hub: FakeHub) -> None:
    commit = tagged_hub.commit_of(PUBLIC_REPO)
    model = verify(by_commit, ModelSpec(PUBLIC_REPO, commit))
    assert model.commit == commit


def test_tag_pin_records_the_tag_and_its_commit(by_tag: Path, tagged_hub: FakeHub) -> None:
    entry = manifest_entry(by_tag)
    assert (entry["revision"], entry["commit"]) == (TAG, tagged_hub.commit_of(PUBLIC_REPO))


def test_tag_pin_verifies(by_tag: Path, tagged_hub: FakeHub) -> None:
    model = verify(by_tag, ModelSpec(PUBLIC_REPO, TAG))
    assert model.commit == tagged_hub.commit_of(PUBLIC_REPO)


def test_tag_pin_writes_the_ref_as_huggingface_hub_does(by_tag: Path, tagged_hub: FakeHub) -> None:
    ref = by_tag / "hub" / ModelSpec(PUBLIC_REPO, TAG).cache_folder / "refs" / TAG
    assert ref.read_text() == tagged_hub.commit_of(PUBLIC_REPO)


def test_prints_the_pinned_revision_and_commit(tagged_hub: FakeHub, tmp_path: Path) -> None:
    result = pinned(tagged_hub, tmp_path, TAG)
    commit = tagged_hub.commit_of(PUBLIC_REPO)
    assert result.stdout.startswith(f"prefetch: {PUBLIC_REPO}@{TAG} -> commit {commit}, ")


def test_unpinned_entry_beside_a_pinned_one_uses_hf_revision(
    tagged_hub: FakeHub, tmp_path: Path
) -> None:
    result = run_prefetch(
        hub_url=tagged_hub.url,
        hf_home=tmp_path,
        repos=f"{PUBLIC_REPO}@{TAG}, nica/private-minilm",
        token_file=tmp_path / "no-token",
        revision="v9",
    )
    assert result.returncode == 1
    assert "prefetch of nica/private-minilm@v9 failed" in result.stderr, result.stderr
