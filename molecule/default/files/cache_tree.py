#!/usr/bin/env python3
"""Every file and symlink under a folder, as JSON: {relative path: {link, size, sha256}}.

Run on the test host (its python3, stdlib only) to record one repo's part of the
Hugging Face cache: `link` is a symlink's target (None for a regular file); `size` and
`sha256` are those of the content it leads to (None for a dangling link).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def describe(path: Path) -> dict[str, object]:
    link = os.readlink(path) if path.is_symlink() else None
    if not path.exists():  # a dangling symlink
        return {"link": link, "size": None, "sha256": None}
    return {"link": link, "size": path.stat().st_size, "sha256": digest(path)}


def main(root: str) -> int:
    base = Path(root)
    tree = {}
    if base.is_dir():
        for folder, dirs, files in os.walk(base):
            here = Path(folder)
            entries = files + [d for d in dirs if (here / d).is_symlink()]
            for name in entries:
                tree[str((here / name).relative_to(base))] = describe(here / name)
    print(json.dumps(tree, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
