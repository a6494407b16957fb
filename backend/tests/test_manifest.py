"""The prefetch manifest and verify(): what /readyz and /v1/models rely on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from src.model_cache.manifest import (
    CachedFile,
    CachedModel,
    ModelCacheError,
    load_manifest,
    manifest_path,
    record,
    snapshot_dir,
    verify,
)
from src.model_spec import ModelSpec

REPO = "org/model"
COMMIT = "c" * 40
FILES = {"config.json": b'{"a": 1}', "1_Pooling/config.json": b"{}", "model.safetensors": b"x" * 64}


def make_cache(hf_home: Path, revision: str = "main") -> CachedModel:
    """A snapshot in huggingface_hub's layout (symlinks into blobs/) plus its manifest entry."""
    repo_dir = hf_home / "hub" / "models--org--model"
    snapshot = snapshot_dir(hf_home, REPO, COMMIT)
    for index, (path, content) in enumerate(FILES.items()):
        blob = repo_dir / "blobs" / f"blob{index}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(content)
        link = snapshot / path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    model = CachedModel(
        repo_id=REPO,
        revision=revision,
        commit=COMMIT,
        files=tuple(CachedFile(p, len(c)) for p, c in sorted(FILES.items())),
        fetched_at="2025-01-01T00:00:00+00:00",
    )
    record(hf_home, model)
    return model


def reason(hf_home: Path, spec: ModelSpec) -> str:
    with pytest.raises(ModelCacheError) as caught:
        verify(hf_home, spec)
    return str(caught.value)


def test_complete_snapshot_verifies(tmp_path: Path) -> None:
    model = make_cache(tmp_path)
    assert verify(tmp_path, ModelSpec(REPO, "main")) == model


def test_pinned_commit_matches_a_model_fetched_by_branch(tmp_path: Path) -> None:
    make_cache(tmp_path)
    assert verify(tmp_path, ModelSpec(REPO, COMMIT)).commit == COMMIT


def test_missing_manifest_means_not_in_the_cache(tmp_path: Path) -> None:
    assert reason(tmp_path, ModelSpec(REPO, "main")) == "not in the cache"


def test_other_repo_is_not_in_the_cache(tmp_path: Path) -> None:
    make_cache(tmp_path)
    assert reason(tmp_path, ModelSpec("org/other", "main")) == "not in the cache"


def test_other_revision_is_named(tmp_path: Path) -> None:
    make_cache(tmp_path, revision="v1")
    assert reason(tmp_path, ModelSpec(REPO, "v2")) == "cached at revision v1, want v2"


def test_missing_file_is_named(tmp_path: Path) -> None:
    make_cache(tmp_path)
    (snapshot_dir(tmp_path, REPO, COMMIT) / "1_Pooling" / "config.json").unlink()
    assert reason(tmp_path, ModelSpec(REPO, "main")) == "file 1_Pooling/config.json missing"


def test_dangling_symlink_counts_as_missing(tmp_path: Path) -> None:
    make_cache(tmp_path)
    for blob in (tmp_path / "hub" / "models--org--model" / "blobs").iterdir():
        blob.unlink()
    assert reason(tmp_path, ModelSpec(REPO, "main")) == "file 1_Pooling/config.json missing"


def test_truncated_file_is_named_with_both_sizes(tmp_path: Path) -> None:
    make_cache(tmp_path)
    (snapshot_dir(tmp_path, REPO, COMMIT) / "model.safetensors").write_bytes(b"x" * 12)
    expected = "file model.safetensors is 12 bytes, expected 64"
    assert reason(tmp_path, ModelSpec(REPO, "main")) == expected


def test_manifest_format(tmp_path: Path) -> None:
    make_cache(tmp_path)
    document = json.loads(manifest_path(tmp_path).read_text())
    assert document["version"] == 1
    entry = document["models"][REPO]
    assert set(entry) == {"revision", "commit", "files", "bytes", "fetched_at"}
    assert entry["bytes"] == sum(len(c) for c in FILES.values()), "bytes is the sum of sizes"
    assert {"path": "config.json", "size": 8} in entry["files"]


def test_record_keeps_other_models_and_leaves_no_temp_file(tmp_path: Path) -> None:
    make_cache(tmp_path)
    other = CachedModel("org/other", "main", "d" * 40, (CachedFile("a", 1),), "2025-01-02T00:00Z")
    record(tmp_path, other)
    assert set(load_manifest(tmp_path)) == {REPO, "org/other"}, "both models should be recorded"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == [], f"the atomic write left temp files: {leftovers}"


def test_corrupt_manifest_is_reported(tmp_path: Path) -> None:
    manifest_path(tmp_path).write_text("{not json")
    assert "is not a valid manifest" in reason(tmp_path, ModelSpec(REPO, "main"))
