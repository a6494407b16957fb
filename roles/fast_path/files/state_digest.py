#!/usr/bin/env python3
"""One sha256 over everything a deploy leaves on a host, for deploy.yml's fast path.

    state_digest.py CONFIG.json   prints {"digest": "<sha256>", "recorded": {...} or null}

CONFIG (written by roles/fast_path record.yml) names what to take in:
  files     paths hashed recursively: each entry's path, type, mode, owner and content
            (sha256 of the bytes; symlinks by target), minus `exclude` (fnmatch patterns
            of whole paths; a directory that matches is left out with all it holds).
            Files over QUICK_CHECK_BYTES (image archives) count by size and modification
            time instead of content, as rsync's quick check does: reading 600 MB on every
            run would cost seconds, and whatever rewrites such a file moves its mtime
  exist     paths whose existence counts (the model cache's unlock marker: only there
            while the cache is unlocked)
  mounts    mount points: source, filesystem type and options, or "not mounted"
  project   the compose project: every container of it with its image ID, state, health
            and compose config hash (a stopped, restarted or replaced container differs)
  images    image references: their IDs (a re-pulled base image differs)
  packages  Debian packages: version and status
  services  systemd units: active and enabled states
  record    the fast-path record of the last full deploy, returned as `recorded`

Only digests leave the host: file contents (secrets included) are hashed, never printed.
Standard library only; runs as root with the host's python3. A command that fails (no
engine, no systemd) is hashed as its error, so the digest differs instead of passing.
Written by hand because it must be one command: one round trip through the connection
instead of a task per fact (docs/architecture.md, "No-change deploys: the fast path").
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MOUNT_FIELDS = "SOURCE,FSTYPE,OPTIONS"
QUICK_CHECK_BYTES = 16 << 20


def _run(*argv: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"error: {error}"
    return f"rc={done.returncode}\n{done.stdout}" + (
        f"\nstderr: {done.stderr}" if done.returncode else ""
    )


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entries(root: Path, exclude: list[str]) -> Iterator[str]:
    """One line per file, directory or link under root (root included), sorted."""

    def excluded(path: Path) -> bool:
        return any(fnmatch.fnmatchcase(str(path), pattern) for pattern in exclude)

    def describe(path: Path) -> str:
        try:
            info = path.lstat()
        except OSError as error:
            return f"{path} missing ({error.strerror})"
        owner = f"{stat.filemode(info.st_mode)} {info.st_uid}:{info.st_gid}"
        if stat.S_ISLNK(info.st_mode):
            return f"{path} {owner} -> {os.readlink(path)}"
        if stat.S_ISREG(info.st_mode) and info.st_size > QUICK_CHECK_BYTES:
            return f"{path} {owner} {info.st_size} bytes, modified {info.st_mtime_ns}"
        if stat.S_ISREG(info.st_mode):
            try:
                return f"{path} {owner} {_file_hash(path)}"
            except OSError as error:
                return f"{path} {owner} unreadable ({error.strerror})"
        return f"{path} {owner}"

    if excluded(root):
        return
    yield describe(root)
    if root.is_dir() and not root.is_symlink():
        for directory, subdirs, files in os.walk(root):
            subdirs[:] = sorted(d for d in subdirs if not excluded(Path(directory, d)))
            for name in sorted(subdirs + files):
                path = Path(directory, name)
                if name in files and excluded(path):
                    continue
                yield describe(path)


def _containers(project: str) -> list[str]:
    ids = _run(
        "docker",
        "ps",
        "--all",
        "--quiet",
        "--no-trunc",
        "--filter",
        f"label=com.docker.compose.project={project}",
    )
    if not ids.startswith("rc=0\n"):
        return [ids]
    listed = ids.split("\n", 1)[1].split()
    if not listed:
        return ["no containers"]
    inspected = subprocess.run(
        ["docker", "inspect", *listed], capture_output=True, text=True, check=False
    )
    if inspected.returncode:
        return [f"inspect failed: {inspected.stderr}"]
    lines = []
    for container in json.loads(inspected.stdout):
        state = container["State"]
        labels = container["Config"].get("Labels") or {}
        lines.append(
            " ".join(
                [
                    container["Name"],
                    container["Image"],
                    state["Status"],
                    (state.get("Health") or {}).get("Status", "no-healthcheck"),
                    labels.get("com.docker.compose.config-hash", "no-config-hash"),
                ]
            )
        )
    return sorted(lines)


def state(config: dict[str, Any]) -> dict[str, Any]:
    """What the digest is made of, as a dict of sorted lists (also for tests and debugging)."""
    exclude = [str(path) for path in config.get("exclude", [])]
    return {
        "files": [
            line for root in config.get("files", []) for line in _entries(Path(root), exclude)
        ],
        "exist": [f"{path} {os.path.exists(path)}" for path in config.get("exist", [])],
        "mounts": [
            f"{path} {_run('findmnt', '-n', '-o', MOUNT_FIELDS, '--mountpoint', path)}"
            for path in config.get("mounts", [])
        ],
        "containers": _containers(config["project"]) if config.get("project") else [],
        "images": [
            f"{image} {_run('docker', 'image', 'inspect', '--format', '{{.Id}}', image)}"
            for image in config.get("images", [])
        ],
        "packages": [
            _run(
                "dpkg-query",
                "--show",
                "--showformat",
                "${Package} ${Version} ${db:Status-Abbrev}\n",
                *(name.split("=")[0] for name in config["packages"]),
            )
        ]
        if config.get("packages")
        else [],
        "services": [
            f"{unit} {_run('systemctl', 'is-active', unit)} {_run('systemctl', 'is-enabled', unit)}"
            for unit in config.get("services", [])
        ],
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: state_digest.py CONFIG.json", file=sys.stderr)
        return 2
    config = json.loads(Path(argv[1]).read_text())
    digest = hashlib.sha256(json.dumps(state(config), sort_keys=True).encode()).hexdigest()
    record = Path(config["record"]) if config.get("record") else None
    recorded = None
    if record is not None and record.is_file():
        try:
            recorded = json.loads(record.read_text())
        except ValueError:
            recorded = None
    print(json.dumps({"digest": digest, "recorded": recorded}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
