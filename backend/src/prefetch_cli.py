"""The model prefetch's command line: its environment in, one line per repo out.

Entry point of `python docker/prefetch_models.py` (cwd /app); the fetching itself is
src/model_cache/prefetch.py. One line per repo on stdout; the first failure prints one line
on stderr and exits 1. Bad configuration exits 2.

Environment:
  HF_MODEL_REPOS           comma separated `org/name[@revision]` (revision: branch, tag, commit)
  HF_REVISION              revision of entries without '@' (default main)
  HF_HOME                  cache root (default /var/huggingface)
  HF_ENDPOINT              the Hub (default https://huggingface.co)
  HF_TOKEN_FILE            file holding the token (default /run/secrets/huggingface_token);
                           when that file is missing or empty, HUGGINGFACE_HUB_TOKEN; else
                           anonymous. HF_TOKEN and HUGGING_FACE_HUB_TOKEN are never used.
  HF_ALLOW_PATTERNS        comma separated globs of the files to fetch
  HF_IGNORE_PATTERNS       comma separated globs of files never to fetch
  HF_ONNX_FILES            the ONNX file each model runs on (src/settings.py); fetched, and
                           checked with ONNX Runtime, instead of the safetensors weights when
                           the repo has it (default `*=onnx/model.onnx`)
  HF_HUB_ETAG_TIMEOUT      seconds for metadata calls (default 10)
  HF_HUB_DOWNLOAD_TIMEOUT  seconds without data before a download fails (default 30)

The patterns and their defaults are described in src/model_cache/prefetch.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from src.model_cache.prefetch import (
    DEFAULT_ALLOW_PATTERNS,
    DEFAULT_IGNORE_PATTERNS,
    FilePatterns,
    PrefetchError,
    prefetch_one,
    prepare_online_hub,
    scrub,
)
from src.settings import ConfigError, hf_home_from_env, model_specs_from_env, onnx_files_from_env

DEFAULT_TOKEN_FILE = "/run/secrets/huggingface_token"  # noqa: S105 - a path, not a secret
TIMEOUT_DEFAULTS = {"HF_HUB_ETAG_TIMEOUT": "10", "HF_HUB_DOWNLOAD_TIMEOUT": "30"}


def token_file_from_env(env: Mapping[str, str]) -> Path:
    return Path(env.get("HF_TOKEN_FILE", "").strip() or DEFAULT_TOKEN_FILE)


def read_token(env: Mapping[str, str]) -> str | None:
    """HF_TOKEN_FILE's content; when the file is missing or empty, HUGGINGFACE_HUB_TOKEN;
    else None (anonymous). HF_TOKEN is never read.

    The guide's contract: the token comes from /run/secrets/huggingface_token OR
    HUGGINGFACE_HUB_TOKEN, so an empty secret file (no token configured) is no token there.
    """
    path = token_file_from_env(env)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        token = ""
    except OSError as error:
        raise ConfigError(f"HF_TOKEN_FILE: cannot read {path}: {error.strerror}") from None
    return token or env.get("HUGGINGFACE_HUB_TOKEN", "").strip() or None


def _globs(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def patterns_from_env(env: Mapping[str, str]) -> FilePatterns:
    """HF_ALLOW_PATTERNS and HF_IGNORE_PATTERNS (comma separated globs; unset/empty: default)."""
    allow = _globs(env.get("HF_ALLOW_PATTERNS", ""))
    ignore = _globs(env.get("HF_IGNORE_PATTERNS", ""))
    return FilePatterns(
        allow=allow or DEFAULT_ALLOW_PATTERNS,
        ignore=ignore or DEFAULT_IGNORE_PATTERNS,
        configured=bool(allow or ignore),
    )


def timeouts_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """HF_HUB_ETAG_TIMEOUT and HF_HUB_DOWNLOAD_TIMEOUT (whole seconds), defaults filled in."""
    values = {}
    for variable, default in TIMEOUT_DEFAULTS.items():
        value = env.get(variable, "").strip() or default
        if not value.isdigit() or int(value) == 0:
            raise ConfigError(f"{variable} must be a positive number of seconds, got {value!r}")
        values[variable] = value
    return values


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="prefetch_models.py",
        description="Fetch HF_MODEL_REPOS into the Hugging Face cache under HF_HOME.",
    ).parse_args(argv)
    try:
        hf_home = hf_home_from_env(os.environ)
        specs = model_specs_from_env(os.environ)
        onnx_files = onnx_files_from_env(os.environ, specs)
        token = read_token(os.environ)
        timeouts = timeouts_from_env(os.environ)
        patterns = patterns_from_env(os.environ)
        token_file = token_file_from_env(os.environ)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not specs:
        print("prefetch: HF_MODEL_REPOS is empty, nothing to do")
        return 0
    prepare_online_hub(hf_home, timeouts)
    for spec in specs:
        try:
            onnx_file = onnx_files.for_repo(spec.repo_id)
            line = prefetch_one(spec, hf_home, token, token_file, patterns, onnx_file)
        except PrefetchError as error:
            print(scrub(f"error: prefetch of {spec} failed: {error}", token), file=sys.stderr)
            return 1
        print(scrub(line, token), flush=True)
    return 0
