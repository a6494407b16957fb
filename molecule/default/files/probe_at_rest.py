#!/usr/bin/env python3
"""What an attacker with the host's disks sees while the model cache is locked.

Run on the test host (its python3, stdlib only) after the simulated reboot: the
stack stopped, the cache locked, its filesystem unmounted. Prints one JSON object:

- needles: for each probe taken from the reference model files (the fake Hub's
  copy), whether its bytes appear anywhere in the cache's image file;
- copies: regular files anywhere on the host's filesystems, outside --exclude,
  that are the model weights by name or by size and SHA-256;
- scanned: how many regular files were looked at.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import stat
import sys
from pathlib import Path

PSEUDO_FS = {
    "proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "debugfs", "tracefs",
    "securityfs", "pstore", "bpf", "fusectl", "configfs", "binfmt_misc", "autofs",
    "hugetlbfs", "efivarfs", "nsfs",
}  # fmt: skip


def needles(reference: Path) -> dict[str, bytes]:
    weights = (reference / "model.safetensors").read_bytes()
    header_len = int.from_bytes(weights[:8], "little")
    middle = len(weights) // 2
    vocab = (reference / "vocab.txt").read_bytes()
    return {
        "safetensors header": weights[8 : 8 + min(64, header_len)],
        "tensor data": weights[middle : middle + 64],
        "vocab.txt": vocab[len(vocab) // 2 : len(vocab) // 2 + 64],
        "config.json": (reference / "config.json").read_bytes()[:48],
        "manifest key": b'"fetched_at"',
        "snapshot folder": b"models--sentence-transformers--all-MiniLM-L6-v2",
    }


def scan_image(image: Path, probes: dict[str, bytes]) -> dict[str, bool]:
    with image.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return {name: data.find(needle) != -1 for name, needle in probes.items()}


def mounts() -> dict[str, str]:
    found = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        found[left.split()[4].replace("\\040", " ")] = right.split()[0]
    return found


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_copies(weights: Path, exclude: list[str]) -> tuple[list[str], int]:
    size, digest = weights.stat().st_size, sha256(str(weights))
    skip = {path for path, fstype in mounts().items() if fstype in PSEUDO_FS} | set(exclude)
    copies, scanned = [], 0
    for top, dirs, files in os.walk("/", onerror=lambda _error: None):
        dirs[:] = [d for d in dirs if os.path.join(top, d) not in skip]
        for name in files:
            path = os.path.join(top, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            scanned += 1
            if name == weights.name or (info.st_size == size and sha256(path) == digest):
                copies.append(path)
    return copies, scanned


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--reference", type=Path, required=True, help="the model's original files")
    parser.add_argument("--exclude", action="append", default=[], help="a directory not to scan")
    args = parser.parse_args()
    copies, scanned = find_copies(args.reference / "model.safetensors", args.exclude)
    result = {
        "needles": scan_image(args.image, needles(args.reference)),
        "copies": copies,
        "scanned": scanned,
    }
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
