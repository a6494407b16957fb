"""Run the backend's command-line entry points as the image does: a subprocess, cwd backend/."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

BACKEND_DIR = Path(__file__).resolve().parents[2]
PREFETCH_CODE = "import sys; from src.model_cache.prefetch import main; sys.exit(main())"


def base_env(**extra: str) -> dict[str, str]:
    """A clean environment: nothing of the caller's HF_* or DATABASE_* leaks in."""
    env = {key: os.environ[key] for key in ("PATH", "LANG", "TMPDIR") if key in os.environ}
    env.update(extra)
    return env


def run_python(
    args: list[str], env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=BACKEND_DIR,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_prefetch(
    *,
    hub_url: str,
    hf_home: Path,
    repos: str,
    token_file: Path,
    revision: str = "main",
) -> subprocess.CompletedProcess[str]:
    """The prefetch as in the image: serving's HF_HUB_OFFLINE=1 is set and must not matter."""
    env = base_env(
        HF_ENDPOINT=hub_url,
        HF_HOME=str(hf_home),
        HF_TOKEN_FILE=str(token_file),
        HF_MODEL_REPOS=repos,
        HF_REVISION=revision,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    return run_python(["-c", PREFETCH_CODE], env)


def run_db_cli(
    command: str, database_url: str, password_file: Path
) -> subprocess.CompletedProcess[str]:
    env = base_env(DATABASE_URL=database_url, DATABASE_PASSWORD_FILE=str(password_file))
    return run_python(["-m", "src.database.cli", command], env)
