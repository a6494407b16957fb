"""The encoders of HF_MODEL_REPOS, loaded once at start-up, off the event loop.

Each configured model is "loading" until its encoder is ready or its load failed; /readyz
shows the states (`status()`), POST /v1/embeddings looks encoders up by repo id (`lookup()`).
Only the local cache is read: the snapshot at the commit the prefetch manifest recorded. A model
runs on ONNX Runtime when the manifest lists its ONNX file (HF_ONNX_FILES: the prefetch fetched
it), else on the NumPy BERT; a failed ONNX load never falls back to the NumPy BERT.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from src.embeddings.encoder import Encoder
from src.model_cache.manifest import ModelCacheError, check_sha256, snapshot_dir, verify
from src.model_spec import ModelSpec, OnnxFiles

OK = "ok"
MAX_REASON = 200

# (snapshot folder, ONNX file in it or None for the NumPy BERT) -> the loaded encoder
EncoderLoader = Callable[[Path, str | None], Encoder]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unavailable:
    """Why a configured model has no encoder (yet)."""

    reason: str


LOADING = Unavailable("loading")


class EmbeddingModels:
    def __init__(self, specs: Sequence[ModelSpec], onnx_files: OnnxFiles | None = None) -> None:
        self._specs = tuple(specs)
        self._onnx_files = OnnxFiles() if onnx_files is None else onnx_files
        # One entry per repo id; each is replaced once, by the loading thread (atomic).
        self._states: dict[str, Encoder | Unavailable] = {s.repo_id: LOADING for s in specs}

    def start_loading(
        self, hf_home: Path, loader: EncoderLoader, then: Callable[[], object] | None = None
    ) -> threading.Thread:
        """Load every model in a daemon thread (the server answers /readyz meanwhile), then
        call `then` in that thread (e.g. the start-up backfill)."""

        def run() -> None:
            self.load_all(hf_home, loader)
            if then is not None:
                then()

        thread = threading.Thread(target=run, name="embeddings-loader", daemon=True)
        thread.start()
        return thread

    def load_all(self, hf_home: Path, loader: EncoderLoader) -> None:
        for spec in self._specs:
            onnx_file = self._onnx_files.for_repo(spec.repo_id)
            self._states[spec.repo_id] = _load_one(spec, onnx_file, hf_home, loader)

    def lookup(self, repo_id: str) -> Encoder | Unavailable | None:
        """The encoder, why there is none, or None for a model that is not configured."""
        return self._states.get(repo_id)

    def available(self) -> list[str]:
        """Repo ids of the loaded models, in HF_MODEL_REPOS order."""
        return [repo for repo, state in self._states.items() if isinstance(state, Encoder)]

    def status(self) -> str:
        """The readiness check: "ok" once every model is loaded, else each other one named."""
        problems = [
            f"{spec}: {state.reason}"
            for spec in self._specs
            if isinstance(state := self._states[spec.repo_id], Unavailable)
        ]
        return "; ".join(problems) if problems else OK


def _load_one(
    spec: ModelSpec, onnx_file: str | None, hf_home: Path, loader: EncoderLoader
) -> Encoder | Unavailable:
    try:
        model = verify(hf_home, spec)
    except ModelCacheError as error:
        logger.warning("embeddings: %s not loaded: %s", spec, error)
        return Unavailable(f"not loaded: {error}")
    if onnx_file not in {cached.path for cached in model.files}:
        onnx_file = None  # the repo has no such file: the prefetch fetched the safetensors
    snapshot = snapshot_dir(hf_home, model.repo_id, model.commit)
    started = time.monotonic()
    try:
        # The weights are the bytes the prefetch checked against the Hub, or nothing loads.
        for cached in model.files:
            check_sha256(snapshot, cached, "the prefetch recorded")
        encoder = loader(snapshot, onnx_file)
    except Exception as error:  # any failure must reach /readyz, not end the thread unseen
        reason = _first_line(error)
        logger.warning("embeddings: %s failed to load: %s", spec, reason)
        return Unavailable(f"failed to load: {reason}")
    logger.info(
        "embeddings: %s loaded from commit %s in %.1f s on %s from %s (dimension %d, max %d "
        "tokens)",
        spec,
        model.commit,
        time.monotonic() - started,
        encoder.runtime,
        encoder.weights_file,
        encoder.dimension,
        encoder.max_length,
    )
    return encoder


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:MAX_REASON] if lines else type(error).__name__
