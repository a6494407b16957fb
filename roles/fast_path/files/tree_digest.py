#!/usr/bin/env python3
"""One sha256 over the controller-side source trees a deploy is made of, for the fast path.

    tree_digest.py DIR [DIR ...]   prints the sha256

Every file under each DIR (roles, playbooks, docker/, backend/, scripts/, ...): its path
relative to DIR, its mode and its content. Left out: what is never deployed and changes on
its own (build outputs, virtual environments, caches, .git). Erring on the side of taking
too much in is safe: a needless change only costs one full deploy.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

SKIPPED_DIRS = {
    ".git",
    "build",
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
}


def tree_digest(roots: list[Path]) -> str:
    digest = hashlib.sha256()
    for index, root in enumerate(roots):  # by position: two checkouts of one commit agree
        digest.update(f"root {index}\n".encode())
        for directory, subdirs, files in os.walk(root):
            subdirs[:] = sorted(d for d in subdirs if d not in SKIPPED_DIRS)
            for name in sorted(files):
                path = Path(directory, name)
                if path.suffix == ".pyc" or not path.is_file():
                    continue
                digest.update(
                    f"{path.relative_to(root)} {path.stat().st_mode & 0o7777:o}\n".encode()
                )
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def main(argv: list[str]) -> int:
    roots = [Path(arg).resolve() for arg in argv[1:]]
    missing = [str(root) for root in roots if not root.is_dir()]
    if not roots or missing:
        print(f"error: not a directory: {', '.join(missing) or '(none given)'}", file=sys.stderr)
        return 2
    print(tree_digest(list(dict.fromkeys(roots))))  # given order, each once
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
