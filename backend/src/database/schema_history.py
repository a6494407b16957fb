"""What the database records about its own schema: alembic_version and schema_history.

schema_history is bookkeeping written by the migration runner (src.database.migrations), like
alembic_version itself, not by a migration: one row per revision of the chain from base to the
last head applied, with its `backward_compatible` flag. It lets a release that lacks the newer
migration files (the previous image, still serving during a redeploy or put back by a rollback)
tell whether it can serve a database migrated ahead of its own head.

Both tables are read with plain SQL: no Alembic MigrationContext (which logs two INFO lines per
call), so /readyz stays quiet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

TABLE = "schema_history"

_CREATE = text(
    """
    CREATE TABLE IF NOT EXISTS schema_history (
        revision text CONSTRAINT pk_schema_history PRIMARY KEY,
        down_revision text,
        backward_compatible boolean NOT NULL,
        applied_at timestamptz
    )
    """
)
_COMMENT = text(
    "COMMENT ON TABLE schema_history IS 'Written by the migration runner "
    "(src.database.migrations), not by a migration: each revision from base to the last head "
    "applied and whether the previous release keeps working with it applied. "
    "applied_at is NULL for revisions applied before this table existed.'"
)
# The file's flag wins over an older row; applied_at is kept unless applied again now.
_UPSERT = text(
    """
    INSERT INTO schema_history AS h (revision, down_revision, backward_compatible, applied_at)
    VALUES (:revision, :down_revision, :backward_compatible,
            CASE WHEN CAST(:applied AS boolean) THEN now() END)
    ON CONFLICT (revision) DO UPDATE
       SET down_revision = EXCLUDED.down_revision,
           backward_compatible = EXCLUDED.backward_compatible,
           applied_at = COALESCE(EXCLUDED.applied_at, h.applied_at)
    """
)


@dataclass(frozen=True)
class HistoryEntry:
    revision: str
    down_revision: str | None
    backward_compatible: bool


def _exists(connection: Connection, table: str) -> bool:
    found = connection.execute(text("SELECT to_regclass(:name)"), {"name": table}).scalar()
    return found is not None


def current_revision(connection: Connection) -> str | None:
    """The database's revision (alembic_version); None when not migrated yet.

    Several rows (a branched history, which this project does not use) come back joined by
    spaces: a value that matches no revision, so every caller treats it as unknown.
    """
    if not _exists(connection, "alembic_version"):
        return None
    rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return " ".join(sorted(str(row) for row in rows)) or None


def read_history(connection: Connection) -> dict[str, HistoryEntry]:
    """schema_history by revision; empty when the table does not exist (yet)."""
    if not _exists(connection, TABLE):
        return {}
    rows = connection.execute(
        text("SELECT revision, down_revision, backward_compatible FROM schema_history")
    ).all()
    return {row.revision: HistoryEntry(*row) for row in rows}


def record_history(
    connection: Connection, entries: Iterable[HistoryEntry], applied: Iterable[str]
) -> None:
    """Create schema_history if missing and upsert `entries`; those in `applied` get now() as
    applied_at. The caller owns the transaction (the upgrade's own)."""
    applied_now = set(applied)
    if not _exists(connection, TABLE):
        connection.execute(_CREATE)
        connection.execute(_COMMENT)
    for entry in entries:
        connection.execute(
            _UPSERT,
            {
                "revision": entry.revision,
                "down_revision": entry.down_revision,
                "backward_compatible": entry.backward_compatible,
                "applied": entry.revision in applied_now,
            },
        )
