"""Fetch the models of HF_MODEL_REPOS into the cache under HF_HOME, check them, record them.

Entry point of `python docker/prefetch_models.py` (cwd /app). For each `org/name[@revision]`:

1. resolve the revision to a commit (`model_info`: fails fast, names the HTTP error);
2. `snapshot_download` into `$HF_HOME/hub` (huggingface_hub's standard cache layout);
3. list the repo's files at that commit (`list_repo_tree`) and check each one is in the
   snapshot at its size: completeness comes from the listing, not from the download call;
4. record the model in `$HF_HOME/prefetch-manifest.json` (atomically).

One line per repo on stdout; the first failure prints one line on stderr and exits 1.
Bad configuration exits 2. Always online, whatever HF_HUB_OFFLINE says (the image sets it
to 1 for serving).

Environment: HF_MODEL_REPOS, HF_REVISION (default main), HF_HOME (default /var/huggingface),
HF_ENDPOINT (default https://huggingface.co), HF_TOKEN_FILE (default
/run/secrets/huggingface_token) else HUGGINGFACE_HUB_TOKEN else HF_TOKEN else anonymous,
HF_HUB_ETAG_TIMEOUT (default 10 s), HF_HUB_DOWNLOAD_TIMEOUT (default 30 s).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from src.model_cache.manifest import (
    CachedFile,
    CachedModel,
    ModelCacheError,
    check_snapshot,
    hub_cache_dir,
    now_utc,
    record,
)
from src.model_cache.spec import ModelSpec
from src.settings import ConfigError, hf_home_from_env, model_specs_from_env

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx2

DEFAULT_TOKEN_FILE = "/run/secrets/huggingface_token"  # noqa: S105 - a path, not a secret
TIMEOUT_DEFAULTS = {"HF_HUB_ETAG_TIMEOUT": "10", "HF_HUB_DOWNLOAD_TIMEOUT": "30"}
MAX_WORKERS = 4


class PrefetchError(Exception):
    """A repo could not be fetched; str() is the one-line reason."""


# ---------------------------------------------------------------- configuration


def token_file_from_env(env: Mapping[str, str]) -> Path:
    return Path(env.get("HF_TOKEN_FILE", "").strip() or DEFAULT_TOKEN_FILE)


def read_token(env: Mapping[str, str]) -> str | None:
    """HF_TOKEN_FILE's content if it exists and is non-empty, else the env token, else None."""
    path = token_file_from_env(env)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        token = ""
    except OSError as error:
        raise ConfigError(f"HF_TOKEN_FILE: cannot read {path}: {error.strerror}") from None
    if token:
        return token
    for variable in ("HUGGINGFACE_HUB_TOKEN", "HF_TOKEN"):
        token = env.get(variable, "").strip()
        if token:
            return token
    return None


def scrub(text: str, token: str | None) -> str:
    """The text with the token (if any) replaced, and only its first line."""
    if token:
        text = text.replace(token, "***")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


# ---------------------------------------------------------------- huggingface_hub, online


def timeouts_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """HF_HUB_ETAG_TIMEOUT and HF_HUB_DOWNLOAD_TIMEOUT (whole seconds), defaults filled in."""
    values = {}
    for variable, default in TIMEOUT_DEFAULTS.items():
        value = env.get(variable, "").strip() or default
        if not value.isdigit() or int(value) == 0:
            raise ConfigError(f"{variable} must be a positive number of seconds, got {value!r}")
        values[variable] = value
    return values


def prepare_online_hub(hf_home: Path, timeouts: Mapping[str, str]) -> None:
    """Set up huggingface_hub for online use with bounded timeouts.

    huggingface_hub reads HF_HUB_OFFLINE and its timeouts from the environment once, when it
    is imported; so the environment is set before the first import, and the offline flag is
    also forced on the module in case something imported it earlier.
    """
    os.environ["HF_HUB_OFFLINE"] = "0"  # "0" (not unset) also masks TRANSFORMERS_OFFLINE
    os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"  # noqa: S105 - only send our token
    os.environ["HF_HOME"] = str(hf_home)
    os.environ.update(timeouts)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    warnings.filterwarnings("ignore", module="huggingface_hub")

    import huggingface_hub
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = False
    # Its retry warnings would break "one line per repo".
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    huggingface_hub.set_client_factory(_bounded_client_factory(constants.HF_HUB_DOWNLOAD_TIMEOUT))
    huggingface_hub.close_session()


def _bounded_client_factory(seconds: float) -> Callable[[], httpx2.Client]:
    """huggingface_hub's default HTTP client, plus a timeout for calls that set none.

    Some calls (repo_info inside snapshot_download, list_repo_tree) pass timeout=None, which
    means "wait forever" in httpx2: the hook replaces an all-None timeout.
    """
    import httpx2
    from huggingface_hub.utils._http import default_client_factory  # not re-exported

    bounded = httpx2.Timeout(seconds).as_dict()

    def bound_timeout(request: httpx2.Request) -> None:
        timeout = request.extensions.get("timeout")
        if not timeout or all(value is None for value in timeout.values()):
            request.extensions["timeout"] = dict(bounded)

    def factory() -> httpx2.Client:
        client = default_client_factory()
        client.event_hooks["request"].append(bound_timeout)
        return client

    return factory


# ---------------------------------------------------------------- error text


def describe(
    error: BaseException, spec: ModelSpec, token: str | None, endpoint: str, token_file: Path
) -> str:
    """A short, user-facing reason for a failed Hub call."""
    import httpx2
    from huggingface_hub import errors

    if isinstance(error, errors.LocalEntryNotFoundError) and error.__cause__ is not None:
        error = error.__cause__  # snapshot_download wraps connection errors
    if isinstance(error, errors.RevisionNotFoundError):
        return f"revision {spec.revision!r} not found"
    if isinstance(error, errors.HfHubHTTPError):
        return _describe_http(error, token, token_file)
    if isinstance(error, (httpx2.TransportError, errors.OfflineModeIsEnabled)):
        return f"cannot reach the Hub at {endpoint}: {_short(error)}"
    if isinstance(error, OSError):
        return f"download failed: {_short(error)}"
    return f"{type(error).__name__}: {_short(error)}"


def _describe_http(error: BaseException, token: str | None, token_file: Path) -> str:
    from huggingface_hub import errors

    assert isinstance(error, errors.HfHubHTTPError)
    status = error.response.status_code if error.response is not None else 0
    fix = f"put a valid token in {token_file}"
    if status == 401 and token:
        return f"the Hugging Face token was rejected (HTTP 401); {fix}"
    if isinstance(error, errors.GatedRepoError):
        if token:
            return f"the repository is gated and the token was not granted access (HTTP {status})"
        return f"the repository is gated and no token was given (HTTP {status}); {fix}"
    if isinstance(error, errors.RepositoryNotFoundError):
        if token:
            return f"repository not found, or the token has no access to it (HTTP {status})"
        return (
            f"repository not found, or it is private and no token was given (HTTP {status}); {fix}"
        )
    if status == 403:
        return "the token lacks access to this repository, or it is gated (HTTP 403)"
    if status == 401:
        return f"the Hub requires a token (HTTP 401); {fix}"
    return f"the Hub answered HTTP {status}"


def _short(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(error).__name__


# ---------------------------------------------------------------- fetching


def fetch(spec: ModelSpec, hf_home: Path, token: str | None) -> CachedModel:
    """Download one repo, check the snapshot against the Hub's listing, return its record."""
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.hf_api import RepoFile

    auth: str | bool = token or False  # False: anonymous, never a token found elsewhere
    api = HfApi(token=auth)
    timeout = float(constants.HF_HUB_ETAG_TIMEOUT)

    # Resolve first: this call does no retry and no cache fallback, so a bad token, a missing
    # repo or revision, or an unreachable Hub fail here, fast and with the real reason.
    api.model_info(spec.repo_id, revision=spec.revision, timeout=timeout, token=auth)
    snapshot = Path(
        snapshot_download(
            spec.repo_id,
            revision=spec.revision,
            cache_dir=hub_cache_dir(hf_home),
            token=auth,
            etag_timeout=timeout,
            max_workers=MAX_WORKERS,
        )
    )
    commit = snapshot.name  # the commit snapshot_download resolved (snapshots/<commit>)
    files = []
    for item in api.list_repo_tree(spec.repo_id, revision=commit, recursive=True, token=auth):
        if isinstance(item, RepoFile):
            size = item.lfs.size if item.lfs is not None else item.size
            files.append(CachedFile(path=item.path, size=int(size)))
    if not files:
        raise PrefetchError(f"the Hub lists no file at commit {commit}")
    try:
        check_snapshot(snapshot, files)
    except ModelCacheError as error:
        raise PrefetchError(f"incomplete snapshot at commit {commit}: {error}") from None
    files.sort(key=lambda f: f.path)
    return CachedModel(
        repo_id=spec.repo_id,
        revision=spec.revision,
        commit=commit,
        files=tuple(files),
        fetched_at=now_utc(),
    )


def prefetch_one(spec: ModelSpec, hf_home: Path, token: str | None, token_file: Path) -> str:
    """Fetch and record one repo; returns the line to print. Raises PrefetchError."""
    from huggingface_hub import constants

    try:
        model = fetch(spec, hf_home, token)
    except PrefetchError:
        raise
    except Exception as error:  # every Hub/HTTP/file error becomes one line
        raise PrefetchError(describe(error, spec, token, constants.ENDPOINT, token_file)) from None
    try:
        record(hf_home, model)
    except (OSError, ModelCacheError) as error:
        raise PrefetchError(f"cannot record the manifest: {_short(error)}") from None
    return (
        f"prefetch: {spec} -> commit {model.commit}, {len(model.files)} files, "
        f"{model.bytes / 1e6:.1f} MB"
    )


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="prefetch_models.py",
        description="Fetch HF_MODEL_REPOS into the Hugging Face cache under HF_HOME.",
    ).parse_args(argv)
    try:
        hf_home = hf_home_from_env(os.environ)
        specs = model_specs_from_env(os.environ)
        token = read_token(os.environ)
        timeouts = timeouts_from_env(os.environ)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not specs:
        print("prefetch: HF_MODEL_REPOS is empty, nothing to do")
        return 0
    prepare_online_hub(hf_home, timeouts)
    for spec in specs:
        try:
            line = prefetch_one(spec, hf_home, token, token_file_from_env(os.environ))
        except PrefetchError as error:
            print(scrub(f"error: prefetch of {spec} failed: {error}", token), file=sys.stderr)
            return 1
        print(scrub(line, token), flush=True)
    return 0
