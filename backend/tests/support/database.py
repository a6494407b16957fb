"""A database as `migrate-seed` leaves it: migrated to head, then seeded (in-process)."""

from __future__ import annotations

from src.database.migrations import upgrade_to_head
from src.database.seed import seed
from src.database.session import create_engine_from_settings
from src.settings import Settings


def migrated_and_seeded(settings: Settings) -> None:
    """Upgrade settings' database to head and seed it, through the app's own functions."""
    engine = create_engine_from_settings(settings)
    try:
        upgrade_to_head(engine)
        with engine.begin() as connection:
            seed(connection)
    finally:
        engine.dispose()
