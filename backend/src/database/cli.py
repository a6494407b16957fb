"""Database maintenance: `python -m src.database.cli COMMAND` (see COMMANDS).

Run from backend/ (the image's /app). One line per step on stdout; on failure one line on
stderr and exit 1; bad usage or configuration exits 2. The password never appears.

- migrate, seed, migrate-seed: `alembic upgrade head` (under a lock, recording schema_history),
  the idempotent seed rows, or both.
- current: the database's revision and this release's head.
- plan: one line of JSON, what `migrate` would apply: {"current": "0002" | null, "head": "0003",
  "pending": [{"revision": "0003", "backward_compatible": true, "doc": "..."}]}.
- compat: exit 0 when this release can serve the database's schema (as /readyz decides: at its
  head, or ahead of it by backward-compatible migrations only), else exit 1 naming why.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from alembic.util import CommandError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from src.database.compat import serving_status
from src.database.migrations import MigrationError, pending, release_schema, upgrade_to_head
from src.database.schema_history import current_revision
from src.database.seed import seed
from src.database.session import create_engine_from_settings, error_reason
from src.settings import ConfigError, Settings

COMMANDS = ("migrate", "seed", "migrate-seed", "current", "plan", "compat")


class StepError(Exception):
    """A failed step; str() is the one line to print."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m src.database.cli",
        description=(
            "Migrate (alembic upgrade head) and seed the database named by DATABASE_URL; "
            "plan a migration; check that this release can serve the database's schema."
        ),
    )
    parser.add_argument("command", choices=COMMANDS, help="what to do")
    return parser


def _migrate(engine: Engine) -> str:
    result = upgrade_to_head(engine)
    if result.ahead is not None:
        return f"migrate: {result.ahead} (0 migrations applied)"
    plural = "" if result.applied == 1 else "s"
    return f"migrate: at head {result.after} ({result.applied} migration{plural} applied)"


def _seed(engine: Engine) -> str:
    with engine.begin() as connection:
        result = seed(connection)
    return f"seed: {result.added} rows added, {result.present} present"


def _current(engine: Engine) -> str:
    with engine.connect() as connection:
        current = current_revision(connection)
    return f"current: {current or 'none'} (head {release_schema().head})"


def _plan(engine: Engine) -> str:
    release = release_schema()
    with engine.connect() as connection:
        current = current_revision(connection)
        migrations = pending(connection, release)
    document = {
        "current": current,
        "head": release.head,
        "pending": [
            {"revision": m.revision, "backward_compatible": m.backward_compatible, "doc": m.doc}
            for m in migrations
        ],
    }
    return json.dumps(document)


def _compat(engine: Engine) -> str:
    release = release_schema()
    with engine.connect() as connection:
        status = serving_status(connection, release.head, release.revisions)
    if not status.serves:
        raise StepError(f"this release cannot serve the database: {status.detail}")
    return f"compat: ok: {status.detail}"


def _run(command: str, engine: Engine, settings: Settings) -> None:
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as error:
        raise StepError(
            f"cannot reach the database at {settings.database_url_safe}: "
            f"{error_reason(error, settings)}"
        ) from None
    steps = {
        "migrate": [_migrate],
        "seed": [_seed],
        "migrate-seed": [_migrate, _seed],
        "current": [_current],
        "plan": [_plan],
        "compat": [_compat],
    }[command]
    for step in steps:
        name = step.__name__.lstrip("_")
        try:
            print(step(engine), flush=True)
        except SQLAlchemyError as error:
            raise StepError(f"{name} failed: {error_reason(error, settings)}") from None
        except CommandError as error:
            raise StepError(f"{name} failed: {str(error).splitlines()[0]}") from None
        except MigrationError as error:
            raise StepError(f"{name} failed: {error}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    engine = create_engine_from_settings(settings)
    try:
        _run(args.command, engine, settings)
    except StepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
