"""Add documents.embedding_vector (pgvector) with an HNSW cosine index; filled from embedding.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Expand only, so the previous release keeps working against this schema: the REAL[] column
stays and stays the one both releases write; the new `embedding_vector vector` column beside it
is derived from it by a trigger on every insert and on every update of `embedding` (the
previous release's writes included), and this migration fills it for the rows already there
(a cast, no re-embedding). Search reads the new column through an HNSW index (cosine):

- one partial index per dimension: `embedding_vector::vector(N)` WHERE embedding_dim = N, as
  HNSW needs a fixed dimension and a column may hold several models' vectors. This migration
  indexes 384 (all-MiniLM-L6-v2, the default model); a model of another dimension is searched
  exactly (a scan) until a migration adds its index.
- needs the pgvector extension, 0.8.0 or later (iterative index scans): images
  pgvector/pgvector:pg17, or Debian's postgresql-<version>-pgvector. CREATE EXTENSION needs a
  superuser (POSTGRES_USER of the postgres images is one) unless the extension is there.

The contract step of a later release drops `embedding` and the trigger, and writes the vector.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

from src.database.migrations import MigrationError

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand only (see above): the previous release writes `embedding` as before, the trigger keeps
# the new column in step, and nothing of it reads the new column.
backward_compatible: bool = True

MIN_VERSION = (0, 8, 0)
INDEXED_DIMENSIONS = (384,)


def upgrade() -> None:
    _require_pgvector()
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("ALTER TABLE documents ADD COLUMN embedding_vector vector")
    op.execute(
        """
        CREATE FUNCTION documents_embedding_vector() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.embedding_vector := CAST(NEW.embedding AS vector);
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER tg_documents_embedding_vector BEFORE INSERT OR UPDATE OF embedding "
        "ON documents FOR EACH ROW EXECUTE FUNCTION documents_embedding_vector()"
    )
    op.execute(
        "UPDATE documents SET embedding_vector = CAST(embedding AS vector) "
        "WHERE embedding IS NOT NULL"
    )
    for dimension in INDEXED_DIMENSIONS:
        op.execute(
            f"CREATE INDEX ix_documents_embedding_vector_{dimension} ON documents "
            f"USING hnsw ((CAST(embedding_vector AS vector({dimension}))) vector_cosine_ops) "
            f"WHERE embedding_dim = {dimension}"
        )


def downgrade() -> None:
    # The extension stays: dropping it needs its owner, and other databases' objects may use it.
    for dimension in INDEXED_DIMENSIONS:
        op.execute(f"DROP INDEX ix_documents_embedding_vector_{dimension}")
    op.execute("DROP TRIGGER tg_documents_embedding_vector ON documents")
    op.execute("DROP FUNCTION documents_embedding_vector()")
    op.execute("ALTER TABLE documents DROP COLUMN embedding_vector")


def _require_pgvector() -> None:
    """MigrationError, one line, when pgvector is missing, too old, or cannot be created."""
    bind = op.get_bind()
    row = bind.execute(
        text(
            "SELECT default_version, installed_version, "
            "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser "
            "FROM pg_available_extensions WHERE name = 'vector'"
        )
    ).first()
    if row is None:
        raise MigrationError(
            "migration 0003 needs the pgvector extension, which this PostgreSQL server does not "
            "have: run an image with it (pgvector/pgvector:pg17) or install "
            "postgresql-<version>-pgvector on the server"
        )
    version = row.installed_version or row.default_version
    if _version(version) < MIN_VERSION:
        raise MigrationError(
            f"migration 0003 needs pgvector {'.'.join(map(str, MIN_VERSION))} or later, the "
            f"server has {version}: upgrade the package, then ALTER EXTENSION vector UPDATE"
        )
    if row.installed_version is None and not row.superuser:
        raise MigrationError(
            "migration 0003 needs the pgvector extension in this database and the database "
            "user may not create it: run `CREATE EXTENSION vector;` in it once as a superuser"
        )


def _version(value: str) -> tuple[int, ...]:
    return tuple(int(part) for part in value.split(".") if part.isdigit())
