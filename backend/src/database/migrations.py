"""Alembic, driven through its API: this release's migrations, what is pending, the upgrade.

Every migration file declares `backward_compatible: bool`: True when the previous release keeps
working with the migration applied (expand), False when it does not (contract). The runner
refuses to apply anything while a file of the chain lacks it.

upgrade_to_head() runs in one transaction that first takes a PostgreSQL advisory lock
(MIGRATION_LOCK_KEY), so of two runs at once the second waits and then finds the head applied;
in that same transaction it records the chain in schema_history (src.database.schema_history).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from src.database.compat import serving_status
from src.database.schema_history import HistoryEntry, current_revision, record_history

BACKEND_DIR = Path(__file__).resolve().parents[2]
MIGRATIONS_DIR = BACKEND_DIR / "migrations"
# The key of the transaction-level advisory lock (pg_advisory_xact_lock) every migration run
# holds from the start of its transaction to commit or rollback: the ASCII bytes of "nica_mig"
# as a bigint. Advisory locks are per database; nothing else in this project takes this key.
MIGRATION_LOCK_KEY = 0x6E6963615F6D6967
FLAG = "backward_compatible"


class MigrationError(Exception):
    """A refused migration run; str() is the one line to print."""


@dataclass(frozen=True)
class Migration:
    revision: str
    down_revision: str | None
    backward_compatible: bool | None  # None: the file does not declare it (or not as a bool)
    doc: str  # the first line of its docstring
    path: Path


@dataclass(frozen=True)
class ReleaseSchema:
    """This release's migrations, base first (one line of revisions, no branches)."""

    migrations: tuple[Migration, ...]

    @property
    def head(self) -> str:
        return self.migrations[-1].revision

    @property
    def revisions(self) -> frozenset[str]:
        return frozenset(m.revision for m in self.migrations)

    def after(self, revision: str | None) -> tuple[Migration, ...]:
        """The migrations after `revision` (one of this release's, or None: all of them)."""
        if revision is None:
            return self.migrations
        index = [m.revision for m in self.migrations].index(revision)
        return self.migrations[index + 1 :]

    def require_flags(self) -> None:
        """MigrationError naming the first migration without a `backward_compatible` bool."""
        for migration in self.migrations:
            if migration.backward_compatible is None:
                try:
                    shown = migration.path.relative_to(BACKEND_DIR)
                except ValueError:
                    shown = migration.path
                raise MigrationError(
                    f"migration {migration.revision} ({shown}) does not set {FLAG}: "
                    f"set `{FLAG} = True` in it if the previous release keeps working with it "
                    f"applied (expand), `{FLAG} = False` if not (contract)"
                )

    def history(self) -> list[HistoryEntry]:
        """The schema_history rows of this chain (call require_flags() first)."""
        return [
            HistoryEntry(m.revision, m.down_revision, bool(m.backward_compatible))
            for m in self.migrations
        ]


def alembic_config(
    connection: Connection | None = None, migrations_dir: Path = MIGRATIONS_DIR
) -> Config:
    """Config for backend/alembic.ini, usable from any working directory.

    With a connection, migrations/env.py runs on it instead of building its own engine.
    `migrations_dir` replaces the script location (tests run other releases' migrations).
    """
    config = Config(str(BACKEND_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(migrations_dir).replace("%", "%%"))
    config.attributes["configure_logger"] = False
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def release_schema(migrations_dir: Path = MIGRATIONS_DIR) -> ReleaseSchema:
    """The migrations in `migrations_dir` (loaded once per process and folder)."""
    script = ScriptDirectory.from_config(alembic_config(migrations_dir=migrations_dir))
    heads = script.get_heads()
    if len(heads) != 1:
        found = ", ".join(heads) or "none"
        raise MigrationError(f"the migrations need exactly one head, found: {found}")
    scripts = list(script.walk_revisions("base", heads[0]))
    return ReleaseSchema(tuple(_migration(s) for s in reversed(scripts)))


def _migration(script: Script) -> Migration:
    down = script.down_revision
    if not (down is None or isinstance(down, str)):
        raise MigrationError(
            f"migration {script.revision} merges {', '.join(down)}: keep one line of migrations"
        )
    flag = getattr(script.module, FLAG, None)
    lines = [line.strip() for line in (script.module.__doc__ or "").splitlines() if line.strip()]
    return Migration(
        revision=script.revision,
        down_revision=down,
        backward_compatible=flag if isinstance(flag, bool) else None,
        doc=lines[0] if lines else "",
        path=Path(script.path),
    )


def head_revision(migrations_dir: Path = MIGRATIONS_DIR) -> str:
    return release_schema(migrations_dir).head


def pending(connection: Connection, release: ReleaseSchema) -> tuple[Migration, ...]:
    """What upgrade_to_head() would apply now; MigrationError when it would refuse."""
    release.require_flags()
    current = current_revision(connection)
    if current is not None and current not in release.revisions:
        _serves_ahead(connection, release)
        return ()
    return release.after(current)


@dataclass(frozen=True)
class UpgradeResult:
    before: str | None
    after: str | None
    applied: int
    # Set when the database was ahead of this release's head and this release serves it as is.
    ahead: str | None = None


def upgrade_to_head(engine: Engine, migrations_dir: Path = MIGRATIONS_DIR) -> UpgradeResult:
    """`alembic upgrade head` in one transaction, under the migration lock, recording
    schema_history; a database ahead by backward-compatible migrations is left as is."""
    release = release_schema(migrations_dir)
    release.require_flags()
    config = alembic_config(migrations_dir=migrations_dir)
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        before = current_revision(connection)
        if before is not None and before not in release.revisions:
            ahead = _serves_ahead(connection, release)
            return UpgradeResult(before=before, after=before, applied=0, ahead=ahead)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        after = current_revision(connection)
        applied = [m.revision for m in release.after(before)] if after != before else []
        record_history(connection, release.history(), applied=applied)
    return UpgradeResult(before=before, after=after, applied=len(applied))


def _serves_ahead(connection: Connection, release: ReleaseSchema) -> str:
    """The status line for a database ahead of this release; MigrationError if it cannot
    serve it."""
    status = serving_status(connection, release.head, release.revisions)
    if not status.serves:
        raise MigrationError(status.detail)
    return status.detail
