"""Engine factory from Settings, and error text that is safe to show."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from src.settings import Settings

APPLICATION_NAME = "nica-pro-backend"


def create_engine_from_settings(
    settings: Settings,
    *,
    connect_timeout: int = 5,
    pool_timeout: float = 5.0,
    pool_size: int = 5,
    max_overflow: int = 10,
) -> Engine:
    """A pooled engine; nothing connects until first use.

    connect_timeout (seconds, libpq minimum 2) keeps callers such as /readyz fast when the
    database is down; hide_parameters keeps bound values out of error messages. The pool
    holds `pool_size` connections, `max_overflow` more when busy (SQLAlchemy's defaults).
    """
    return create_engine(
        settings.database_url,
        pool_pre_ping=True,
        pool_timeout=pool_timeout,
        pool_size=pool_size,
        max_overflow=max_overflow,
        hide_parameters=True,
        connect_args={"connect_timeout": connect_timeout, "application_name": APPLICATION_NAME},
    )


def error_reason(error: BaseException, settings: Settings) -> str:
    """A one-line reason for a database error, with the password scrubbed out."""
    source: BaseException = error
    if isinstance(error, DBAPIError) and error.orig is not None:
        source = error.orig
    elif isinstance(error, SQLAlchemyError) and error.__cause__ is not None:
        source = error.__cause__
    lines = [line.strip() for line in str(source).splitlines() if line.strip()]
    reason = lines[0] if lines else type(source).__name__
    password = settings.database_url.password
    if password:
        reason = reason.replace(str(password), "***")
    return reason[:300]
