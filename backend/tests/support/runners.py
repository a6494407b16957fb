"""Run the backend's command-line entry points as the image does: a subprocess, cwd backend/."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

BACKEND_DIR = Path(__file__).resolve().parents[2]
PREFETCH_CODE = "import sys; from src.prefetch_cli import main; sys.exit(main())"
WAITING_DB_CLI_CODE = (
    "import sys; from src.database.cli import main; "
    "print('waiting', file=sys.stderr, flush=True); sys.stdin.readline(); "
    "sys.exit(main(sys.argv[1:]))"
)


def base_env(**extra: str) -> dict[str, str]:
    """A clean environment: nothing of the caller's HF_* or DATABASE_* leaks in."""
    env = {key: os.environ[key] for key in ("PATH", "LANG", "TMPDIR") if key in os.environ}
    env.update(extra)
    return env


def run_python(
    args: list[str], env: Mapping[str, str], timeout: float = 120, cwd: Path = BACKEND_DIR
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
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
    command: str, database_url: str, password_file: Path, backend_dir: Path = BACKEND_DIR
) -> subprocess.CompletedProcess[str]:
    """The database CLI of the backend in `backend_dir` (another release: a copy of it)."""
    env = base_env(DATABASE_URL=database_url, DATABASE_PASSWORD_FILE=str(password_file))
    return run_python(["-m", "src.database.cli", command], env, cwd=backend_dir)


def start_db_cli_on_signal(
    command: str, database_url: str, password_file: Path, backend_dir: Path = BACKEND_DIR
) -> subprocess.Popen[str]:
    """The database CLI, imported and then waiting: it prints "waiting" on stderr and runs
    `command` once a line arrives on its stdin (to start several at the same moment)."""
    env = base_env(DATABASE_URL=database_url, DATABASE_PASSWORD_FILE=str(password_file))
    return subprocess.Popen(
        [sys.executable, "-c", WAITING_DB_CLI_CODE, command],
        cwd=backend_dir,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
