"""Add the document embedding: vector, model id and dimension (all nullable).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Expand only, so the previous release keeps working against this schema (rolling upgrade and
rollback without a downgrade): three nullable columns without defaults (ADD COLUMN is a
catalog-only change, no table rewrite) and a CHECK that holds for every row the previous
release writes (it never sets these columns, so they stay NULL). Documents it inserts get
their embedding from the next start-up's backfill (src.database.documents.backfill).

Plain PostgreSQL, no extension: the vector is REAL[] (float4, L2-normalized); cosine
similarity is a dot product computed in SQL. embedding_model + embedding_dim record what
computed the vector, so a changed model is detected and such rows are not compared.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand only (see above): the previous release ignores the new columns.
backward_compatible: bool = True

COMPLETE = (
    "(embedding IS NULL AND embedding_model IS NULL AND embedding_dim IS NULL)"
    " OR (embedding IS NOT NULL AND embedding_model IS NOT NULL"
    " AND cardinality(embedding) = embedding_dim)"
)


def upgrade() -> None:
    op.add_column(
        "documents",
        sa.Column("embedding", postgresql.ARRAY(sa.REAL(), dimensions=1), nullable=True),
    )
    op.add_column("documents", sa.Column("embedding_model", sa.String(200), nullable=True))
    op.add_column("documents", sa.Column("embedding_dim", sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f("ck_documents_embedding_complete"), "documents", sa.text(COMPLETE)
    )


def downgrade() -> None:
    op.drop_constraint("ck_documents_embedding_complete", "documents", type_="check")
    op.drop_column("documents", "embedding_dim")
    op.drop_column("documents", "embedding_model")
    op.drop_column("documents", "embedding")
