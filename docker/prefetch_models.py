#!/usr/bin/env python3
"""Prefetch the models in HF_MODEL_REPOS into HF_HOME (run by docker-entrypoint.sh).

The logic lives in the backend package (src.prefetch_cli, the command line, and
src.model_cache.prefetch), next to the code that reads the cache, so both share one
definition of "a complete snapshot"; this file is the entry point the guide names.
"""

import sys
from pathlib import Path

APP_DIR = Path("/app")

if __name__ == "__main__":
    sys.path.insert(0, str(APP_DIR))
    from src.prefetch_cli import main

    sys.exit(main())
