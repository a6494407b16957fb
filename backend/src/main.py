"""ASGI entry point: `uvicorn src.main:app` from backend/ (the image's /app).

Settings are read once at import; bad configuration prints one `error: ...` line on stderr
and exits 2 before uvicorn starts serving. The app never calls the Hugging Face Hub.
"""

from __future__ import annotations

import logging
import sys

from src.app import create_app
from src.settings import ConfigError, Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _load_settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
app = create_app(_load_settings())
