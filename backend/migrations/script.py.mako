"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}
# Required (the runner refuses a migration without it). True when the release before this one
# keeps working with this migration applied: expand steps only (new tables, nullable columns,
# constraints its writes satisfy). False for a contract step (drop or rename something the
# previous release reads or writes, a NOT NULL it does not fill): then the previous release
# goes unready while this one migrates and a rollback refuses. Split a breaking change into
# steps one release apart: add the new shape and write both (expand), move the code to it, and
# drop the old shape once the previous release no longer uses it (then that drop is True too).
backward_compatible: bool = ...


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
