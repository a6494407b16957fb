"""Rename documents.body to documents.content (test-only next release: contract).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Not a migration of this project: testing/next_release/README.md says how tests drop it into a
copy of backend/migrations/versions/ to play a release after 0004's. The current release reads
and writes documents.body (seed, search, backfill), so it breaks once this runs: the kind of
step that must come a release after the expand that made the old column unused.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Contract: the previous release reads documents.body, which is gone after this.
backward_compatible: bool = False


def upgrade() -> None:
    op.alter_column("documents", "body", new_column_name="content")


def downgrade() -> None:
    op.alter_column("documents", "content", new_column_name="body")
