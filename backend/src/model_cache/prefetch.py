"""Fetch models into the cache under HF_HOME, check them, record them.

The command line (`python docker/prefetch_models.py`, its environment) is src/prefetch_cli.py.
For each `org/name[@revision]`:

1. resolve the revision to a commit (`model_info`: fails fast, names the HTTP error);
2. list the repo's files at that commit (`list_repo_tree`) and keep those the file patterns
   select (below);
3. download exactly those files at that commit into `$HF_HOME/hub` (huggingface_hub's
   standard cache layout), each tried up to 3 times on connection errors and HTTP 5xx;
4. check each selected file is in the snapshot at its listed size, and each LFS file (the
   weights) at its listed sha256: completeness comes from the listing, not from the download
   call;
5. record the model, with exactly the selected files, in `$HF_HOME/prefetch-manifest.json`
   (atomically; never for a repo that failed), and remove partial downloads of killed runs.

One line per repo on stdout; the first failure prints one line on stderr and exits 1.
Bad configuration exits 2. Always online, whatever HF_HUB_OFFLINE says (the image sets it
to 1 for serving).

Configuration (HF_TOKEN_FILE, HF_ALLOW_PATTERNS, timeouts, ...) is read from the
environment by src/prefetch_cli.py; default patterns: DEFAULT_ALLOW_PATTERNS (safetensors
weights, *.json, *.txt, tokenizer*, vocab*, merges*, *.model, 1_Pooling/*, modules.json,
README.md, .gitattributes) and DEFAULT_IGNORE_PATTERNS (the other weight formats).

Globs match the whole path in the repo, `*` also across '/' (huggingface_hub's
filter_repo_objects). With both pattern variables unset, a repo whose listing has no
*.safetensors file is fetched with its other weight formats (allow + default ignore
patterns, nothing ignored), after a one-line warning on stderr. Set either variable and the
patterns apply exactly as given.

The ONNX file (HF_ONNX_FILES, default onnx/model.onnx; src/model_spec.py): with both pattern
variables unset, a repo that has it is fetched with it (and its external data file,
`<file>_data` or `<file>.data`, if the repo has one) instead of its *.safetensors weights:
the encoder runs on ONNX Runtime and reads nothing else. Before the repo is recorded, the
file is loaded by ONNX Runtime and run on a probe batch (src/embeddings/onnx_bert.py): a
corrupt file fails the prefetch, naming it. A repo without that file is fetched as above
(the NumPy BERT reads its safetensors).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from src.model_cache.manifest import (
    CachedFile,
    CachedModel,
    ModelCacheError,
    check_sha256,
    check_snapshot,
    hub_cache_dir,
    now_utc,
    record,
    snapshot_dir,
)
from src.model_spec import ModelSpec

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx2
    from huggingface_hub import HfApi

MAX_WORKERS = 4
DOWNLOAD_TRIES = 3  # attempts of the listing and of each file, on transient errors only
RETRY_BACKOFF_SECONDS = 0.5  # waited after the first failed attempt, doubled after each next
DEFAULT_ALLOW_PATTERNS = (
    "*.safetensors",
    "*.json",
    "*.txt",
    "tokenizer*",
    "vocab*",
    "merges*",
    "*.model",  # sentencepiece
    "1_Pooling/*",
    "modules.json",
    "README.md",
    ".gitattributes",
)
DEFAULT_IGNORE_PATTERNS = (  # other weight formats, skipped when the repo has safetensors
    "pytorch_model*",
    "*.onnx",
    "onnx/*",
    "openvino/*",
    "*.h5",
    "*.msgpack",
    "tf_model*",
    "flax_model*",
    "rust_model.ot",
)
SAFETENSORS_PATTERN = "*.safetensors"

T = TypeVar("T")


ONNX_DATA_SUFFIXES = ("_data", ".data")  # an ONNX file's external weights, as exporters name them


class PrefetchError(Exception):
    """A repo could not be fetched; str() is the one-line reason."""


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class FilePatterns:
    """Which files of a repo to fetch (globs over the path in the repo)."""

    allow: tuple[str, ...]
    ignore: tuple[str, ...]
    configured: bool  # set by HF_ALLOW_PATTERNS / HF_IGNORE_PATTERNS: applied as given

    def for_listing(self, paths: Sequence[str]) -> tuple[FilePatterns, bool]:
        """The patterns to use for a repo with these files, and whether they fell back.

        Defaults only: a repo with no (non-ignored) *.safetensors file falls back to its
        other weight formats.
        """
        from huggingface_hub.utils._paths import filter_repo_objects  # not re-exported

        if self.configured:
            return self, False
        kept = filter_repo_objects(
            paths, allow_patterns=[SAFETENSORS_PATTERN], ignore_patterns=list(self.ignore)
        )
        if any(True for _ in kept):
            return self, False
        return FilePatterns(self.allow + self.ignore, (), configured=False), True

    def select(self, paths: Sequence[str]) -> set[str]:
        from huggingface_hub.utils._paths import filter_repo_objects  # not re-exported

        return set(
            filter_repo_objects(
                paths, allow_patterns=list(self.allow), ignore_patterns=list(self.ignore) or None
            )
        )

    def with_onnx(self, paths: Sequence[str], onnx_file: str | None) -> set[str] | None:
        """The files to fetch for a model that runs on `onnx_file`: the default selection with
        that file (and its external data) in place of the *.safetensors weights; None when the
        repo has no such file, or the patterns are configured (they apply as given)."""
        from huggingface_hub.utils._paths import filter_repo_objects  # not re-exported

        if self.configured or onnx_file is None or onnx_file not in paths:
            return None
        selected = self.select(paths)
        weights = set(filter_repo_objects(sorted(selected), allow_patterns=[SAFETENSORS_PATTERN]))
        data = {onnx_file + suffix for suffix in ONNX_DATA_SUFFIXES} & set(paths)
        return (selected - weights) | {onnx_file} | data


def scrub(text: str, token: str | None) -> str:
    """The text with the token (if any) replaced, and only its first line."""
    if token:
        text = text.replace(token, "***")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


# ---------------------------------------------------------------- huggingface_hub, online


def prepare_online_hub(hf_home: Path, timeouts: Mapping[str, str]) -> None:
    """Set up huggingface_hub for online use with bounded timeouts.

    huggingface_hub reads HF_HUB_OFFLINE and its timeouts from the environment once, when it
    is imported; so the environment is set before the first import, and the offline flag is
    also forced on the module in case something imported it earlier.
    """
    os.environ["HF_HUB_OFFLINE"] = "0"  # "0" (not unset) also masks TRANSFORMERS_OFFLINE
    os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"  # noqa: S105 - only send our token
    os.environ["HF_HOME"] = str(hf_home)
    for variable in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN"):
        os.environ.pop(variable, None)  # read_token() has run: huggingface_hub gets no other
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

    Some calls (list_repo_tree, for one) pass timeout=None, which
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
        error = error.__cause__  # hf_hub_download wraps connection errors
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


def is_transient(error: BaseException) -> bool:
    """A connection error, timeout or HTTP 408/429/5xx: worth another try."""
    import httpx2
    from huggingface_hub import errors

    if isinstance(error, errors.LocalEntryNotFoundError) and error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, httpx2.TransportError):
        return True
    if isinstance(error, errors.HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        return status in (408, 429) or status >= 500
    return False


def with_retries(call: Callable[[], T], tries: int = DOWNLOAD_TRIES) -> T:
    """call(), tried up to `tries` times while it fails with a transient error."""
    for attempt in range(1, tries + 1):
        try:
            return call()
        except Exception as error:
            if attempt >= tries or not is_transient(error):
                raise
            time.sleep(RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def list_files(api: HfApi, spec: ModelSpec, commit: str, token: str | bool) -> list[CachedFile]:
    """Every file of the repo at `commit`, with its size (LFS size for LFS files)."""
    from huggingface_hub.hf_api import RepoFile

    files = []
    for item in api.list_repo_tree(spec.repo_id, revision=commit, recursive=True, token=token):
        if isinstance(item, RepoFile):
            size = item.lfs.size if item.lfs is not None else item.size
            digest = item.lfs.sha256 if item.lfs is not None else None
            files.append(CachedFile(path=item.path, size=int(size), sha256=digest))
    return files


def download(
    spec: ModelSpec,
    commit: str,
    files: Sequence[CachedFile],
    hf_home: Path,
    token: str | bool,
    etag_timeout: float,
) -> None:
    """Each file at `commit` into the cache, MAX_WORKERS at a time, each with its own retries.

    At a commit, huggingface_hub makes no request for a file already in the snapshot. The
    first failure cancels the files not started yet and is raised.
    """
    from huggingface_hub import hf_hub_download

    def one(path: str) -> str:
        return with_retries(
            lambda: hf_hub_download(
                spec.repo_id,
                path,
                revision=commit,
                cache_dir=hub_cache_dir(hf_home),
                token=token,
                etag_timeout=etag_timeout,
            )
        )

    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        futures = [pool.submit(one, f.path) for f in files]
        try:
            for future in futures:
                future.result()
        finally:
            for future in futures:
                future.cancel()


def remove_stale_partials(hf_home: Path, spec: ModelSpec) -> None:
    """Delete the repo's `blobs/*.incomplete` left by killed runs.

    huggingface_hub 2.4 downloads to a per-process `<etag>.<random>.incomplete` file, so a
    killed run's partial file is never resumed nor removed. One whose blob lock is held
    belongs to a download in progress elsewhere and is left alone.
    """
    from huggingface_hub.utils._fixes import WeakFileLock  # not re-exported

    folder = hub_cache_dir(hf_home) / spec.cache_folder
    for partial in (folder / "blobs").glob("*.incomplete"):
        etag = partial.name.split(".", 1)[0]
        lock = hub_cache_dir(hf_home) / ".locks" / spec.cache_folder / f"{etag}.lock"
        try:
            with WeakFileLock(lock, timeout=0.1):
                partial.unlink(missing_ok=True)
        except Exception:  # noqa: S112 - locked (or unreadable): not ours to remove
            continue


def write_ref(hf_home: Path, spec: ModelSpec, commit: str) -> None:
    """`refs/<revision>` -> commit, as huggingface_hub writes it for a branch or tag."""
    if spec.revision == commit:
        return
    ref = hub_cache_dir(hf_home) / spec.cache_folder / "refs" / spec.revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit, encoding="utf-8")


def fetch(
    spec: ModelSpec,
    hf_home: Path,
    token: str | None,
    patterns: FilePatterns,
    onnx_file: str | None = None,
) -> CachedModel:
    """Download one repo's selected files, check the snapshot against the listing (and its ONNX
    file with ONNX Runtime), return its record."""
    from huggingface_hub import HfApi, constants

    auth: str | bool = token or False  # False: anonymous, never a token found elsewhere
    api = HfApi(token=auth)
    timeout = float(constants.HF_HUB_ETAG_TIMEOUT)

    # Resolve first: this call does no retry and no cache fallback, so a bad token, a missing
    # repo or revision, or an unreachable Hub fail here, fast and with the real reason.
    info = api.model_info(spec.repo_id, revision=spec.revision, timeout=timeout, token=auth)
    commit = info.sha
    if not commit:
        raise PrefetchError(f"the Hub gave no commit for revision {spec.revision!r}")
    listing = with_retries(lambda: list_files(api, spec, commit, auth))
    if not listing:
        raise PrefetchError(f"the Hub lists no file at commit {commit}")
    paths = [f.path for f in listing]
    wanted = patterns.with_onnx(paths, onnx_file)
    if wanted is None:
        patterns, fell_back = patterns.for_listing(paths)
        if fell_back:
            print(
                f"warning: {spec} has no *.safetensors file; fetching its other weight formats",
                file=sys.stderr,
                flush=True,
            )
        wanted = patterns.select(paths)
    files = sorted((f for f in listing if f.path in wanted), key=lambda f: f.path)
    if not files:
        raise PrefetchError(f"no file at commit {commit} matches the allow/ignore patterns")
    download(spec, commit, files, hf_home, auth, timeout)
    snapshot = snapshot_dir(hf_home, spec.repo_id, commit)
    try:
        check_snapshot(snapshot, files)
    except ModelCacheError as error:
        raise PrefetchError(f"incomplete snapshot at commit {commit}: {error}") from None
    for cached in files:  # the weights (LFS files): the bytes the Hub lists, none other
        try:
            check_sha256(snapshot, cached, "the Hub lists")
        except ModelCacheError as error:
            raise PrefetchError(f"corrupt snapshot at commit {commit}: {error}") from None
    if onnx_file is not None and onnx_file in wanted:
        check_onnx(snapshot, onnx_file)
    write_ref(hf_home, spec, commit)
    remove_stale_partials(hf_home, spec)
    return CachedModel(
        repo_id=spec.repo_id,
        revision=spec.revision,
        commit=commit,
        files=tuple(files),
        fetched_at=now_utc(),
    )


def check_onnx(snapshot: Path, onnx_file: str) -> None:
    """The snapshot's ONNX file loads in ONNX Runtime and passes the encoder's probe batch."""
    from src.embeddings.errors import EncoderLoadError
    from src.embeddings.onnx_bert import check_file

    try:
        check_file(snapshot / onnx_file, onnx_file)
    except EncoderLoadError as error:
        raise PrefetchError(str(error)) from None


def prefetch_one(
    spec: ModelSpec,
    hf_home: Path,
    token: str | None,
    token_file: Path,
    patterns: FilePatterns,
    onnx_file: str | None = None,
) -> str:
    """Fetch and record one repo (`onnx_file`: the ONNX file its encoder runs on, if the repo
    has it); returns the line to print. Raises PrefetchError."""
    from huggingface_hub import constants

    try:
        model = fetch(spec, hf_home, token, patterns, onnx_file)
    except PrefetchError:
        raise
    except Exception as error:  # every Hub/HTTP/file error becomes one line
        raise PrefetchError(describe(error, spec, token, constants.ENDPOINT, token_file)) from None
    try:
        record(hf_home, model)
    except (OSError, ModelCacheError) as error:
        raise PrefetchError(f"cannot record the manifest: {_short(error)}") from None
    runs_on = (
        f", runs on ONNX Runtime ({onnx_file})"
        if onnx_file in {cached.path for cached in model.files}
        else ""
    )
    return (
        f"prefetch: {spec} -> commit {model.commit}, {len(model.files)} files, "
        f"{model.bytes / 1e6:.1f} MB{runs_on}"
    )
