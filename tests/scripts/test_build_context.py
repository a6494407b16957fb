"""scripts/build_context.py: the context archive is byte-for-byte reproducible.

Its sha256 names the image tag (roles/release), so the same checkout must give the same
bytes (an unchanged release is never rebuilt) and any changed byte another digest (a
changed one always is). Run from the repository root: `.venv/bin/python -m pytest -q
tests/scripts`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "build_context.py"
SOURCE = "backend/src/main.py"  # a file the archive carries (docker/Dockerfile.dockerignore)


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_context", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_context"] = module
    spec.loader.exec_module(module)
    return module


build_context = load()


def archive(members: list[tuple[str, Path]], out_dir: Path) -> tuple[bytes, str]:
    path, digest = build_context.write_archive(out_dir, members)
    return Path(path).read_bytes(), str(digest)


@pytest.fixture()
def checkout_members(tmp_path: Path) -> list[tuple[str, Path]]:
    """What the archive of this checkout holds (no wheels: they come from the cache)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    members: list[tuple[str, Path]] = build_context._members(build_context.allowed_paths(), wheels)
    assert any(name == SOURCE for name, _ in members), f"{SOURCE} is not in the context"
    return members


@pytest.fixture()
def copied_members(
    tmp_path: Path, checkout_members: list[tuple[str, Path]]
) -> list[tuple[str, Path]]:
    """The same members, copied to a scratch tree that a test may touch or change."""
    copies = []
    for name, path in checkout_members:
        copy = tmp_path / "copy" / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
        copies.append((name, copy))
    return copies


def test_two_builds_of_the_same_checkout_are_byte_for_byte_identical(
    tmp_path: Path, checkout_members: list[tuple[str, Path]]
) -> None:
    first, first_digest = archive(checkout_members, tmp_path / "a")
    second, second_digest = archive(checkout_members, tmp_path / "b")
    assert first == second, "two archives of the same checkout differ"
    assert first_digest == second_digest


def test_file_times_do_not_change_the_archive(
    tmp_path: Path,
    checkout_members: list[tuple[str, Path]],
    copied_members: list[tuple[str, Path]],
) -> None:
    # A fresh clone or a `touch` changes every mtime, not the release.
    for _, path in copied_members:
        os.utime(path, (1_000_000_000, 1_000_000_000))
    _, original = archive(checkout_members, tmp_path / "a")
    _, touched = archive(copied_members, tmp_path / "b")
    assert touched == original, "the archive depends on the files' modification times"


def test_a_changed_byte_changes_the_digest(
    tmp_path: Path,
    checkout_members: list[tuple[str, Path]],
    copied_members: list[tuple[str, Path]],
) -> None:
    changed = dict(copied_members)[SOURCE]
    changed.write_bytes(changed.read_bytes() + b"\n")
    _, original = archive(checkout_members, tmp_path / "a")
    _, edited = archive(copied_members, tmp_path / "b")
    assert edited != original, f"a change to {SOURCE} left the digest (the image tag) as it was"


# One small package with a compiled extension, so its wheels are per architecture.
TINY_LOCK = "markupsafe==3.0.2\n"


def wheel_platforms(archive: Path) -> set[str]:
    """The platform tags of the wheels a context archive carries."""
    with tarfile.open(archive) as tar:
        names = [m.name for m in tar.getmembers() if m.name.endswith(".whl")]
    assert names, f"{archive.name} carries no wheel"
    return {name.rsplit("-", 1)[1].removesuffix(".whl") for name in names}


def test_each_architecture_gets_a_context_of_its_own_wheels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fleet of x86_64 and aarch64 hosts: the contexts sit side by side, each with the
    # wheels of its own CPU (a tiny lock file stands in for the backend's, to download little).
    lock = tmp_path / "requirements.lock"
    lock.write_text(TINY_LOCK)
    monkeypatch.setattr(build_context, "LOCK", lock)
    out, cache = tmp_path / "context", tmp_path / "cache"
    cache.mkdir()
    archives = {}
    for arch in ("x86_64", "aarch64"):
        wheels = build_context.wheelhouse(cache, "3.11", arch)
        members = build_context._members(build_context.allowed_paths(), wheels)
        archives[arch], _ = build_context.write_archive(out, members, arch)
    assert sorted(p.name.split("-")[1] for p in out.glob("context-*.tar")) == [
        "aarch64",
        "x86_64",
    ], "building one architecture's context removed the other's"
    for arch, archive in archives.items():
        platforms = wheel_platforms(Path(archive))
        assert platforms and all(tag.endswith(arch) for tag in platforms), (
            f"the {arch} context carries wheels for {platforms}"
        )
