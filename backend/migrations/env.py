"""Alembic environment: online migrations only, on the app's own database settings.

When called through src.database.migrations, the caller passes its connection in
`config.attributes["connection"]`; from the alembic CLI, an engine is built from the
environment (DATABASE_URL, DATABASE_PASSWORD_FILE) like the app does.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from src.database.models import Base
from src.database.session import create_engine_from_settings
from src.settings import Settings

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)


def run_on(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
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
