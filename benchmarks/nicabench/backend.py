"""The backend's own modules (backend/src), imported from this checkout: the benchmark embeds
with the encoder that serves and runs the search statement the backend runs, not copies."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from .options import REPO

BACKEND = REPO / "backend"


def module(name: str) -> Any:
    """backend/src/<name> (dotted, e.g. "database.documents"), imported once."""
    if str(BACKEND) not in sys.path:
        sys.path.insert(0, str(BACKEND))
    return importlib.import_module(f"src.{name}")
