"""Alembic, driven through its API: configuration, head, current revision, upgrade."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

BACKEND_DIR = Path(__file__).resolve().parents[2]


def alembic_config(connection: Connection | None = None) -> Config:
    """Config for backend/alembic.ini, usable from any working directory.

    With a connection, migrations/env.py runs on it instead of building its own engine.
    """
    config = Config(str(BACKEND_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(BACKEND_DIR / "migrations").replace("%", "%%"))
    config.attributes["configure_logger"] = False
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the migrations folder holds no revision")
    return head


def current_revision(connection: Connection) -> str | None:
    """The database's revision from alembic_version; None when not migrated yet."""
    return MigrationContext.configure(connection).get_current_revision()


@dataclass(frozen=True)
class UpgradeResult:
    before: str | None
    after: str | None
    applied: int


def upgrade_to_head(engine: Engine) -> UpgradeResult:
    """`alembic upgrade head` in one transaction."""
    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    with engine.begin() as connection:
        before = current_revision(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        after = current_revision(connection)
    applied = 0
    if after is not None and after != before:
        applied = sum(1 for _ in script.iterate_revisions(after, before))
    return UpgradeResult(before=before, after=after, applied=applied)
