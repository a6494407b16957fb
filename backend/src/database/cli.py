"""Database maintenance: `python -m src.database.cli {migrate,seed,migrate-seed,current}`.

Run from backend/ (the image's /app). One line per step on stdout; on failure one line on
stderr and exit 1; bad usage or configuration exits 2. The password never appears.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from alembic.util import CommandError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from src.database.migrations import current_revision, head_revision, upgrade_to_head
from src.database.seed import seed
from src.database.session import create_engine_from_settings, error_reason
from src.settings import ConfigError, Settings

COMMANDS = ("migrate", "seed", "migrate-seed", "current")


class StepError(Exception):
    """A failed step; str() is the one line to print."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m src.database.cli",
        description="Migrate (alembic upgrade head) and seed the database named by DATABASE_URL.",
    )
    parser.add_argument("command", choices=COMMANDS, help="what to do")
    return parser


def _migrate(engine: Engine) -> str:
    result = upgrade_to_head(engine)
    plural = "" if result.applied == 1 else "s"
    return f"migrate: at head {result.after} ({result.applied} migration{plural} applied)"


def _seed(engine: Engine) -> str:
    with engine.begin() as connection:
        result = seed(connection)
    return f"seed: {result.added} rows added, {result.present} present"


def _current(engine: Engine) -> str:
    with engine.connect() as connection:
        current = current_revision(connection)
    return f"current: {current or 'none'} (head {head_revision()})"


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
    }[command]
    for step in steps:
        name = step.__name__.lstrip("_")
        try:
            print(step(engine), flush=True)
        except SQLAlchemyError as error:
            raise StepError(f"{name} failed: {error_reason(error, settings)}") from None
        except CommandError as error:
            raise StepError(f"{name} failed: {str(error).splitlines()[0]}") from None


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
