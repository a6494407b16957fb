"""Add documents.source, a nullable text column (test-only next release: expand).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Not a migration of this project: testing/next_release/README.md says how tests drop it into a
copy of backend/migrations/versions/ to play the next release. A nullable column without a
default is a catalog-only change; the current release names the columns it inserts and
selects, so it never sees this one and keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand: the previous release ignores the new column.
backward_compatible: bool = True


def upgrade() -> None:
    op.add_column("documents", sa.Column("source", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("documents", "source")
