"""Configuration from the environment, checked once, with one clear error naming the variable.

DATABASE_URL            postgresql+psycopg://USER@HOST:PORT/DB   (required, no password in it)
DATABASE_PASSWORD_FILE  file whose stripped content is the database password (optional)
HF_HOME                 model cache root (default /var/huggingface)
HF_MODEL_REPOS          comma separated org/name[@revision] (default: none)
HF_REVISION             revision of entries without '@' (default main)
HF_ONNX_FILES           which ONNX file each model runs on with ONNX Runtime, when its repo has
                        it: comma separated REPO=FILE, REPO an org/name of HF_MODEL_REPOS or
                        `*` (the others), FILE a path in the repo ending in .onnx, or `none`
                        (the NumPy BERT, from model.safetensors); default `*=onnx/model.onnx`.
                        The prefetch reads it too: it fetches that file instead of the
                        safetensors weights (src/model_cache/prefetch.py)
EMBEDDINGS_MAX_INPUTS   most inputs one POST /v1/embeddings may carry (default 64)
EMBEDDINGS_MAX_INPUT_CHARS  most characters of one text to embed: each input of POST
                            /v1/embeddings, POST /v1/documents' text, GET /v1/search's q
                            (default 20000)
EMBEDDINGS_BATCH_WAIT_MS    how long a lone embedding request waits for others to share its
                            forward pass, in milliseconds (default 2; 0: no wait)
EMBEDDINGS_MAX_BATCH_TOKENS most tokens of one batch of requests and of one forward pass,
                            counted padded (rows x longest; default 8192)
MAX_REQUEST_BODY_BYTES      largest request body accepted; a larger one is refused with 413
                            before it is read (default 4194304, 4 MiB)
OTEL_EXPORTER_OTLP_ENDPOINT         OTLP/HTTP collector base URL, e.g. http://otel:4318; spans go
                                    to <it>/v1/traces (default: unset, no traces exported)
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT  full traces URL, used as is; wins over the one above
OTEL_SERVICE_NAME                   service.name of the spans (default nica-pro-backend)
HF_CACHE_MARKER                     file name under HF_HOME that exists only while an encrypted
                                    cache is unlocked (default: none, no check)
API_KEYS_FILE               file listing the API keys' SHA-256 hashes and scopes (src.api_keys);
                            set: every /v1 request needs `Authorization: Bearer <key>`;
                            unset: the API is open (default). Never the keys themselves.
SEARCH_EF_SEARCH            candidates GET /v1/search's HNSW index scan keeps (pgvector's
                            hnsw.ef_search, 1..1000; default 400): higher finds the exact
                            nearest documents more often and costs more time per search
PROMETHEUS_MULTIPROC_DIR    folder where every uvicorn worker writes its metrics (multiprocess
                            mode of prometheus_client; the entrypoint sets and empties it, and
                            starts the metrics process that serves them: src/metrics). Unset:
                            no metrics.
WARMUP_BEFORE_READY         1 (default): each worker runs one inference per loaded model and one
                            search statement before /readyz says ready; 0: ready without (for
                            measuring what the warm-up saves)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from src import api_keys
from src.api_keys import ApiKeys
from src.model_spec import (
    ModelSpec,
    OnnxFiles,
    is_valid_revision,
    parse_model_repos,
    parse_onnx_files,
)

DEFAULT_HF_HOME = "/var/huggingface"
DEFAULT_REVISION = "main"
DEFAULT_EMBEDDINGS_MAX_INPUTS = 64
# The models read at most 256 or 512 tokens (all-MiniLM-L6-v2: 256), some 1,000-2,500
# characters of English; the tokenizer still reads the whole text before truncating it.
# 20000 is several times that, so long texts still embed (truncated), while one input costs
# a bounded tokenizer pass (64 inputs x 20000 = 1.28 M characters per request at most).
DEFAULT_EMBEDDINGS_MAX_INPUT_CHARS = 20000
# A lone request waits this long for company: ~10% of a short text's ~20 ms forward pass.
DEFAULT_EMBEDDINGS_BATCH_WAIT_MS = 2
# 32 texts of 256 tokens (all-MiniLM-L6-v2's longest): the attention scores of one pass stay
# near 100 MB (rows x heads x 256 x 256 float32), while short texts share passes by hundreds.
DEFAULT_EMBEDDINGS_MAX_BATCH_TOKENS = 8192
# As the nginx proxy of a deployed host (client_max_body_size 4m): 64 inputs of 20000
# characters of plain text fit; a bigger body is refused before it is read.
DEFAULT_MAX_REQUEST_BODY_BYTES = 4 * 1024 * 1024
# Measured by benchmarks/nicabench/index_bench.py (docs/benchmarks.md) on 100,000 distinct
# sentences embedded by the real model, PostgreSQL 17, migration 0003's index, a busy 2-core
# machine (load average 7-8): paraphrase-like queries' top result was the exact one at every
# value from 40; unrelated questions' at 400 for 87% (statement p95 36 ms), at 1000 (pgvector's
# most) for 90% (p95 61 ms). pgvector refuses values outside 1..1000.
DEFAULT_SEARCH_EF_SEARCH = 400
MAX_SEARCH_EF_SEARCH = 1000
DRIVER = "postgresql+psycopg"
DEFAULT_SERVICE_NAME = "nica-pro-backend"


class ConfigError(ValueError):
    """Bad configuration; str() is one line naming the variable."""


@dataclass(frozen=True)
class Tracing:
    """Where request spans go (OTLP/HTTP, protobuf) and under which service name."""

    traces_url: str
    service_name: str


@dataclass(frozen=True)
class Settings:
    database_url: URL  # carries the password; renders as *** with str()/repr()
    hf_home: Path
    models: tuple[ModelSpec, ...]
    onnx_files: OnnxFiles = field(default_factory=OnnxFiles)  # HF_ONNX_FILES
    embeddings_max_inputs: int = DEFAULT_EMBEDDINGS_MAX_INPUTS
    embeddings_max_input_chars: int = DEFAULT_EMBEDDINGS_MAX_INPUT_CHARS
    embeddings_batch_wait_ms: int = DEFAULT_EMBEDDINGS_BATCH_WAIT_MS
    embeddings_max_batch_tokens: int = DEFAULT_EMBEDDINGS_MAX_BATCH_TOKENS
    max_request_body_bytes: int = DEFAULT_MAX_REQUEST_BODY_BYTES
    tracing: Tracing | None = None  # None: no traces exported
    hf_cache_marker: str = ""
    search_ef_search: int = DEFAULT_SEARCH_EF_SEARCH
    uvicorn_workers: int = 1  # src.worker_readiness: /readyz waits for every worker's models
    metrics_dir: Path | None = None  # None: no metrics recorded (src.metrics)
    warmup: bool = True  # src.warmup: ready only after one inference per model and one search
    api_keys: ApiKeys | None = field(default=None, repr=False)  # None: the API is open

    @property
    def database_url_safe(self) -> str:
        return render_url(self.database_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        database_url, hf_home = database_url_from_env(env), hf_home_from_env(env)
        models = model_specs_from_env(env)
        return cls(
            database_url=database_url,
            hf_home=hf_home,
            models=tuple(models),
            onnx_files=onnx_files_from_env(env, models),
            embeddings_max_inputs=embeddings_max_inputs_from_env(env),
            embeddings_max_input_chars=embeddings_max_input_chars_from_env(env),
            embeddings_batch_wait_ms=_whole_number(
                env, "EMBEDDINGS_BATCH_WAIT_MS", DEFAULT_EMBEDDINGS_BATCH_WAIT_MS
            ),
            embeddings_max_batch_tokens=_positive_int(
                env, "EMBEDDINGS_MAX_BATCH_TOKENS", DEFAULT_EMBEDDINGS_MAX_BATCH_TOKENS
            ),
            max_request_body_bytes=_positive_int(
                env, "MAX_REQUEST_BODY_BYTES", DEFAULT_MAX_REQUEST_BODY_BYTES
            ),
            tracing=tracing_from_env(env),
            hf_cache_marker=hf_cache_marker_from_env(env),
            search_ef_search=search_ef_search_from_env(env),
            uvicorn_workers=_positive_int(env, "UVICORN_WORKERS", 1),
            metrics_dir=metrics_dir_from_env(env),
            warmup=_switch(env, "WARMUP_BEFORE_READY", default=True),
            api_keys=api_keys_from_env(env),
        )


def render_url(url: URL) -> str:
    """The URL for messages and logs: the password, if any, shown as ***."""
    return url.render_as_string(hide_password=True)


def database_url_from_env(env: Mapping[str, str]) -> URL:
    raw = env.get("DATABASE_URL", "").strip()
    if not raw:
        raise ConfigError(
            "DATABASE_URL is not set (e.g. postgresql+psycopg://app@postgres:5432/app)"
        )
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        # The value itself is not echoed: it might hold a password.
        raise ConfigError(
            "DATABASE_URL is not a valid URL (e.g. postgresql+psycopg://app@postgres:5432/app)"
        ) from None
    if url.password is not None:
        raise ConfigError(
            "DATABASE_URL must not contain a password; put it in the file named by "
            "DATABASE_PASSWORD_FILE"
        )
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername=DRIVER)
    if url.drivername != DRIVER:
        raise ConfigError(f"DATABASE_URL must start with {DRIVER}://, not {url.drivername}://")
    if not url.database:
        raise ConfigError(f"DATABASE_URL names no database: {render_url(url)}")
    password = _read_password(env.get("DATABASE_PASSWORD_FILE", "").strip())
    return url if password is None else url.set(password=password)


def _read_password(path: str) -> str | None:
    if not path:
        return None
    try:
        password = Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(f"DATABASE_PASSWORD_FILE: cannot read {path}: {error.strerror}") from None
    if not password:
        raise ConfigError(f"DATABASE_PASSWORD_FILE: {path} is empty")
    return password


def hf_home_from_env(env: Mapping[str, str]) -> Path:
    value = env.get("HF_HOME", "").strip() or DEFAULT_HF_HOME
    path = Path(value)
    if not path.is_absolute():
        raise ConfigError(f"HF_HOME must be an absolute path, got {value!r}")
    return path


def model_specs_from_env(env: Mapping[str, str]) -> list[ModelSpec]:
    revision = env.get("HF_REVISION", "").strip() or DEFAULT_REVISION
    if not is_valid_revision(revision):
        raise ConfigError(f"HF_REVISION: {revision!r} is not a valid git revision")
    try:
        return parse_model_repos(env.get("HF_MODEL_REPOS", ""), default_revision=revision)
    except ValueError as error:
        raise ConfigError(f"HF_MODEL_REPOS: {error}") from None


def onnx_files_from_env(env: Mapping[str, str], models: Sequence[ModelSpec]) -> OnnxFiles:
    """HF_ONNX_FILES; a repo it names must be one of `models` (HF_MODEL_REPOS): a typo there
    would otherwise leave that model on its default file without a word."""
    try:
        onnx_files = parse_onnx_files(env.get("HF_ONNX_FILES", ""))
    except ValueError as error:
        raise ConfigError(f"HF_ONNX_FILES: {error}") from None
    configured = {spec.repo_id for spec in models}
    for repo, _ in onnx_files.by_repo:
        if repo not in configured:
            raise ConfigError(f"HF_ONNX_FILES names {repo}, which HF_MODEL_REPOS does not list")
    return onnx_files


def embeddings_max_inputs_from_env(env: Mapping[str, str]) -> int:
    return _positive_int(env, "EMBEDDINGS_MAX_INPUTS", DEFAULT_EMBEDDINGS_MAX_INPUTS)


def embeddings_max_input_chars_from_env(env: Mapping[str, str]) -> int:
    return _positive_int(env, "EMBEDDINGS_MAX_INPUT_CHARS", DEFAULT_EMBEDDINGS_MAX_INPUT_CHARS)


def search_ef_search_from_env(env: Mapping[str, str]) -> int:
    value = _positive_int(env, "SEARCH_EF_SEARCH", DEFAULT_SEARCH_EF_SEARCH)
    if value > MAX_SEARCH_EF_SEARCH:
        raise ConfigError(f"SEARCH_EF_SEARCH must be within 1..{MAX_SEARCH_EF_SEARCH}, got {value}")
    return value


def _positive_int(env: Mapping[str, str], variable: str, default: int) -> int:
    value = env.get(variable, "").strip()
    if not value:
        return default
    if not (value.isascii() and value.isdigit()) or int(value) == 0:
        raise ConfigError(f"{variable} must be a positive whole number, got {value!r}")
    return int(value)


def _switch(env: Mapping[str, str], variable: str, *, default: bool) -> bool:
    value = env.get(variable, "").strip()
    if not value:
        return default
    if value not in ("0", "1"):
        raise ConfigError(f"{variable} must be 1 (on) or 0 (off), got {value!r}")
    return value == "1"


def metrics_dir_from_env(env: Mapping[str, str]) -> Path | None:
    """PROMETHEUS_MULTIPROC_DIR: an existing folder (prometheus_client writes into it)."""
    value = env.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if not value:
        return None
    path = Path(value)
    if not path.is_absolute() or not path.is_dir():
        raise ConfigError(
            f"PROMETHEUS_MULTIPROC_DIR must be an existing folder (an absolute path), got "
            f"{value!r}; the image's entrypoint makes it, METRICS_ENABLED=0 turns metrics off"
        )
    return path


def _whole_number(env: Mapping[str, str], variable: str, default: int) -> int:
    value = env.get(variable, "").strip()
    if not value:
        return default
    if not (value.isascii() and value.isdigit()):
        raise ConfigError(f"{variable} must be a whole number (0 or more), got {value!r}")
    return int(value)


def tracing_from_env(env: Mapping[str, str]) -> Tracing | None:
    """Tracing when an OTLP endpoint is set; None (nothing exported) otherwise."""
    traces_url = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    variable = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    if not traces_url:
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        if not base:
            return None
        traces_url, variable = f"{base.rstrip('/')}/v1/traces", "OTEL_EXPORTER_OTLP_ENDPOINT"
    if not traces_url.startswith(("http://", "https://")):
        raise ConfigError(f"{variable} must be an http:// or https:// URL, got {traces_url!r}")
    service_name = env.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME
    return Tracing(traces_url=traces_url, service_name=service_name)


def hf_cache_marker_from_env(env: Mapping[str, str]) -> str:
    value = env.get("HF_CACHE_MARKER", "").strip()
    if value in (".", "..") or "/" in value or "\0" in value:
        raise ConfigError(f"HF_CACHE_MARKER must be a file name under HF_HOME, got {value!r}")
    return value


def api_keys_from_env(env: Mapping[str, str]) -> ApiKeys | None:
    """The keys of API_KEYS_FILE; None (an open API) when the variable is unset or empty."""
    path = env.get("API_KEYS_FILE", "").strip()
    if not path:
        return None
    try:
        return api_keys.load(Path(path))
    except api_keys.ApiKeysError as error:
        raise ConfigError(f"API_KEYS_FILE: {error}") from None
