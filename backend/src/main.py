"""ASGI entry point: `uvicorn src.main:app` from backend/ (the image's /app).

Settings are read once at import; bad configuration prints one `error: ...` line on stderr
and exits 2 before uvicorn starts serving. The app never calls the Hugging Face Hub.
"""

from __future__ import annotations

import logging
import sys

from src import blas_threads

# Before NumPy is imported (by src.app): BLAS reads its thread count once, at load.
BLAS_THREADS = blas_threads.configure()
FORWARD_PASSES = blas_threads.forward_passes()

from src.app import create_app  # noqa: E402
from src.settings import ConfigError, Settings  # noqa: E402

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _load_settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
# uvicorn's access log line carries the query string (GET /v1/search?q=<the user's text>): off,
# whatever the command line says; the app logs its own line without it (src.api.request_context).
logging.getLogger("uvicorn.access").disabled = True
settings = _load_settings()
logging.getLogger(__name__).info(
    "startup: %d forward pass(es) at once, %d thread(s) each (BLAS or ONNX Runtime intra-op)",
    FORWARD_PASSES,
    BLAS_THREADS,
)
app = create_app(settings, forward_passes=FORWARD_PASSES, pass_threads=BLAS_THREADS)
