"""Alembic environment: online migrations only, on the app's own database settings.

When called through src.database.migrations, the caller passes its connection in
`config.attributes["connection"]`; from the alembic CLI, an engine is built from the
environment (DATABASE_URL, DATABASE_PASSWORD_FILE) like the app does. The migration lock and
schema_history are the runner's (src.database.migrations.upgrade_to_head): `alembic upgrade`
by hand skips both, and the next `python -m src.database.cli migrate` records the history.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from src.database.models import Base
from src.database.schema_history import TABLE as SCHEMA_HISTORY
from src.database.session import create_engine_from_settings
from src.settings import Settings

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Autogenerate leaves the runner's bookkeeping table alone, as it does alembic_version."""
    return not (type_ == "table" and name == SCHEMA_HISTORY)


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=target_metadata, include_name=include_name
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    engine = create_engine_from_settings(Settings.from_env())
    try:
        with engine.begin() as new_connection:
            run_on(new_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("error: offline (--sql) migrations are not supported; run them online")
run_migrations_online()
