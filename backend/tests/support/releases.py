"""Other releases of the backend, for migration tests: copies with the test-only next
migrations of testing/next_release/ dropped into migrations/versions/."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.runners import BACKEND_DIR

NEXT_RELEASE_DIR = BACKEND_DIR.parent / "testing" / "next_release"
COMPATIBLE = NEXT_RELEASE_DIR / "0004_next_release_compatible.py"
INCOMPATIBLE = NEXT_RELEASE_DIR / "0005_next_release_incompatible.py"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def migrations_copy(dest: Path, *extra: Path) -> Path:
    """A copy of backend/migrations in `dest` with `extra` migration files added; returns it."""
    target = dest / "migrations"
    shutil.copytree(BACKEND_DIR / "migrations", target, ignore=_IGNORE)
    for path in extra:
        shutil.copy2(path, target / "versions" / path.name)
    return target


def backend_copy(dest: Path, *extra: Path) -> Path:
    """A runnable copy of backend/ (src, migrations, alembic.ini) in `dest`, as a release built
    from a checkout with `extra` migration files added; returns it (run the CLI with cwd=it)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(BACKEND_DIR / "src", dest / "src", ignore=_IGNORE)
    shutil.copy2(BACKEND_DIR / "alembic.ini", dest / "alembic.ini")
    migrations_copy(dest, *extra)
    return dest
