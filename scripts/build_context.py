#!/usr/bin/env python3
"""Prepare the backend's Docker build context on the controller.

Two jobs, both for hosts that may have no network:
- a wheelhouse of every locked dependency, for the target's CPU and Python, cached
  by (lock file hash, python, arch) so it is downloaded once;
- a reproducible tar of exactly what docker/Dockerfile copies (the allow-list in
  docker/Dockerfile.dockerignore) plus those wheels.

The tar is written by hand rather than with community.general.archive because it must
be byte-for-byte reproducible (sorted members, zero mtimes and owners): its sha256
names the image tag and lets ansible.builtin.copy skip an unchanged context.

Prints one JSON object: {"archive": ..., "sha256": ..., "version": ..., "wheels": N}. Each
architecture (--arch) has its own wheelhouse and its own context archive, side by side.
With --wheelhouse-only it fills build/wheels in the repository instead (the
compose-only flow: `docker compose ... up --build`).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = "docker/Dockerfile"
IGNORE_FILE = REPO / "docker" / "Dockerfile.dockerignore"
LOCK = REPO / "backend" / "requirements.lock"
PYPROJECT = REPO / "backend" / "pyproject.toml"
WHEELS_IN_CONTEXT = "build/wheels"
SKIP_PARTS = {"__pycache__", ".mypy_cache", ".pytest_cache"}


class BuildContextError(Exception):
    """A failure with a one-line reason for the operator."""


def allowed_paths() -> list[str]:
    """The `!path` lines of the .dockerignore allow-list, minus the wheels."""
    paths = []
    for line in IGNORE_FILE.read_text().splitlines():
        line = line.strip()
        if line.startswith("!") and line[1:] != WHEELS_IN_CONTEXT:
            paths.append(line[1:])
    return [DOCKERFILE, *paths]


def wheelhouse(cache_dir: Path, python_version: str, arch: str) -> Path:
    """Download (once) the locked wheels for CPython `python_version` on Linux `arch`."""
    lock_hash = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]
    abi = "cp" + python_version.replace(".", "")
    target = cache_dir / f"{lock_hash}-{abi}-{arch}"
    if (target / ".complete").exists():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=".wheels-", dir=cache_dir))
    platforms = [f"manylinux_2_{v}_{arch}" for v in (34, 28, 17)] + [f"manylinux2014_{arch}"]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "--abi",
        abi,
        "--abi",
        "abi3",
        "--abi",
        "none",
        "-r",
        str(LOCK),
        "-d",
        str(tmp),
    ]
    for platform in platforms:
        cmd += ["--platform", platform]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildContextError(f"pip download of the locked wheels failed: {last}")
    (tmp / ".complete").write_text(lock_hash + "\n")
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def _members(paths: list[str], wheels: Path) -> list[tuple[str, Path]]:
    """(name in the archive, file on disk), sorted by name."""
    members: dict[str, Path] = {}
    for rel in paths:
        src = REPO / rel
        if not src.exists():
            raise BuildContextError(f"{rel} is missing from the repository")
        files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
        for path in files:
            if SKIP_PARTS.intersection(path.parts) or path.suffix == ".pyc":
                continue
            members[path.relative_to(REPO).as_posix()] = path
    for wheel in sorted(wheels.glob("*.whl")):
        members[f"{WHEELS_IN_CONTEXT}/{wheel.name}"] = wheel
    return sorted(members.items())


def write_archive(
    out_dir: Path, members: list[tuple[str, Path]], arch: str = "any"
) -> tuple[Path, str]:
    """The archive, named after its architecture and digest; the older archives of the same
    architecture are removed (a fleet of several architectures keeps one of each)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".context-", suffix=".tar", dir=out_dir)
    with (
        os.fdopen(fd, "wb") as raw,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, path in members:
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    digest = hashlib.sha256(Path(tmp_name).read_bytes()).hexdigest()
    archive = out_dir / f"context-{arch}-{digest[:16]}.tar"
    os.replace(tmp_name, archive)
    for old in out_dir.glob(f"context-{arch}-*.tar"):  # keep only this architecture's newest
        if old != archive:
            old.unlink(missing_ok=True)
    return archive, digest


def app_version() -> str:
    with PYPROJECT.open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-version", default="3.11", help="target CPython, e.g. 3.11")
    parser.add_argument("--arch", default=os.uname().machine, help="target CPU: x86_64 or aarch64")
    parser.add_argument("--cache-dir", type=Path, default=REPO / "build" / "cache")
    parser.add_argument("--out-dir", type=Path, default=REPO / "build" / "context")
    parser.add_argument(
        "--wheelhouse-only",
        action="store_true",
        help="fill build/wheels in the repository and stop",
    )
    args = parser.parse_args(argv)
    try:
        args.cache_dir.mkdir(parents=True, exist_ok=True)
        wheels = wheelhouse(args.cache_dir, args.python_version, args.arch)
        if args.wheelhouse_only:
            dest = REPO / WHEELS_IN_CONTEXT
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(wheels, dest)
            print(json.dumps({"wheelhouse": str(dest), "wheels": len(list(dest.glob("*.whl")))}))
            return 0
        members = _members(allowed_paths(), wheels)
        archive, digest = write_archive(args.out_dir, members, args.arch)
    except (BuildContextError, OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        print(f"error: build context: {exc}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "archive": str(archive),
                "sha256": digest,
                "version": app_version(),
                "wheels": sum(1 for name, _ in members if name.startswith(WHEELS_IN_CONTEXT)),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
