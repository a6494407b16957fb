"""The prefetch manifest: what is in the model cache, and whether it still is.

`$HF_HOME/prefetch-manifest.json` is written by the prefetch after it has checked a snapshot
against the Hub's file listing, and read (never written) by the serving app:

    {"version": 1,
     "models": {"<repo_id>": {"revision": "main", "commit": "<40 hex>",
                              "files": [{"path": "config.json", "size": 612},
                                        {"path": "onnx/model.onnx", "size": 90364429,
                                         "sha256": "<64 hex>"}, ...],
                              "bytes": 91618861, "fetched_at": "2025-01-01T12:00:00+00:00"}}}

`sha256` is there for the Hub's LFS files (the weights), as the Hub lists them; the prefetch
checked the file against it, and the app checks the weights file it loads
(`check_sha256`) before the runtime reads it: bytes changed since are never served.
Manifests written before it have no `sha256`; such files are checked by size only.

Snapshots live in huggingface_hub's standard cache layout:
`$HF_HOME/hub/models--{org}--{name}/snapshots/{commit}/{path}` (symlinks into `blobs/`).
This module never imports huggingface_hub.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from src.model_spec import ModelSpec

MANIFEST_NAME = "prefetch-manifest.json"
MANIFEST_VERSION = 1
SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")
HASH_CHUNK = 1 << 20


class ModelCacheError(Exception):
    """A model is not usable from the cache; str() is a short reason."""


@dataclass(frozen=True)
class CachedFile:
    path: str
    size: int
    sha256: str | None = None  # the Hub's LFS sha256 (the weights); None for other files

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"path": self.path, "size": self.size}
        if self.sha256 is not None:
            entry["sha256"] = self.sha256
        return entry


@dataclass(frozen=True)
class CachedModel:
    repo_id: str
    revision: str
    commit: str
    files: tuple[CachedFile, ...]
    fetched_at: str

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "commit": self.commit,
            "files": [f.to_json() for f in self.files],
            "bytes": self.bytes,
            "fetched_at": self.fetched_at,
        }

    @classmethod
    def from_json(cls, repo_id: str, data: Any) -> CachedModel:
        if not isinstance(data, dict):
            raise ValueError(f"entry {repo_id} is not an object")
        files = data.get("files")
        if not isinstance(files, list):
            raise ValueError(f"entry {repo_id} has no file list")
        parsed = []
        for item in files:
            path, size = (item.get("path"), item.get("size")) if isinstance(item, dict) else (0, 0)
            if not isinstance(path, str) or not _is_safe_relative(path):
                raise ValueError(f"entry {repo_id} lists a bad path {path!r}")
            if not isinstance(size, int) or size < 0:
                raise ValueError(f"entry {repo_id} lists a bad size for {path}")
            digest = item.get("sha256")
            if digest is not None and not (isinstance(digest, str) and SHA256_RE.match(digest)):
                raise ValueError(f"entry {repo_id} lists a bad sha256 for {path}")
            parsed.append(CachedFile(path, size, digest))
        fields = {k: data.get(k) for k in ("revision", "commit", "fetched_at")}
        if not all(isinstance(v, str) and v for v in fields.values()):
            raise ValueError(f"entry {repo_id} lacks revision, commit or fetched_at")
        return cls(
            repo_id=repo_id,
            revision=str(fields["revision"]),
            commit=str(fields["commit"]),
            files=tuple(parsed),
            fetched_at=str(fields["fetched_at"]),
        )


def _is_safe_relative(path: str) -> bool:
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def hub_cache_dir(hf_home: Path) -> Path:
    """huggingface_hub's cache folder under HF_HOME (its default `HF_HUB_CACHE`)."""
    return hf_home / "hub"


def snapshot_dir(hf_home: Path, repo_id: str, commit: str) -> Path:
    folder = "models--" + repo_id.replace("/", "--")
    return hub_cache_dir(hf_home) / folder / "snapshots" / commit


def manifest_path(hf_home: Path) -> Path:
    return hf_home / MANIFEST_NAME


def load_manifest(hf_home: Path) -> dict[str, CachedModel]:
    """The recorded models by repo id; empty when no manifest exists yet.

    Raises ModelCacheError when the file exists but cannot be read or parsed.
    """
    path = manifest_path(hf_home)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise ModelCacheError(f"cannot read {path}: {error.strerror}") from None
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
            raise ValueError(f"version is not {MANIFEST_VERSION}")
        models = data.get("models")
        if not isinstance(models, dict):
            raise ValueError("'models' is not an object")
        return {repo_id: CachedModel.from_json(repo_id, entry) for repo_id, entry in models.items()}
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        raise ModelCacheError(f"{path} is not a valid manifest: {error}") from None


def record(hf_home: Path, model: CachedModel) -> None:
    """Add or replace one model in the manifest, atomically (temp file + os.replace)."""
    models = load_manifest(hf_home)
    models[model.repo_id] = model
    document = {
        "version": MANIFEST_VERSION,
        "models": {repo_id: models[repo_id].to_json() for repo_id in sorted(models)},
    }
    _write_atomically(manifest_path(hf_home), json.dumps(document, indent=2) + "\n")


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def check_snapshot(snapshot: Path, files: Iterable[CachedFile]) -> None:
    """Raise ModelCacheError unless each file is in the snapshot at its size (symlinks followed)."""
    if not snapshot.is_dir():
        raise ModelCacheError(f"snapshot {snapshot.name} missing")
    for cached in files:
        try:
            info = (snapshot / cached.path).stat()
        except FileNotFoundError:
            raise ModelCacheError(f"file {cached.path} missing") from None
        except OSError as error:
            raise ModelCacheError(f"file {cached.path} unreadable: {error.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise ModelCacheError(f"file {cached.path} is not a regular file")
        if info.st_size != cached.size:
            raise ModelCacheError(
                f"file {cached.path} is {info.st_size} bytes, expected {cached.size}"
            )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(snapshot: Path, cached: CachedFile, expected_from: str) -> None:
    """Raise ModelCacheError unless the file hashes to its sha256 (when one is known);
    `expected_from` says whose sha256 it is ("the Hub lists", "the prefetch recorded")."""
    if cached.sha256 is None:
        return
    try:
        actual = file_sha256(snapshot / cached.path)
    except OSError as error:
        raise ModelCacheError(f"file {cached.path} unreadable: {error.strerror}") from None
    if actual != cached.sha256:
        raise ModelCacheError(
            f"file {cached.path} has sha256 {actual[:16]}..., {expected_from} "
            f"{cached.sha256[:16]}..."
        )


def verify(hf_home: Path, spec: ModelSpec) -> CachedModel:
    """The cached model for `spec`, after checking its snapshot on disk.

    Raises ModelCacheError with a short reason: "not in the cache", "cached at revision X,
    want Y", "file F missing", "file F is N bytes, expected M", ...
    """
    model = load_manifest(hf_home).get(spec.repo_id)
    if model is None:
        raise ModelCacheError("not in the cache")
    if spec.revision not in (model.revision, model.commit):
        raise ModelCacheError(f"cached at revision {model.revision}, want {spec.revision}")
    check_snapshot(snapshot_dir(hf_home, model.repo_id, model.commit), model.files)
    return model
