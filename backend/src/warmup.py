"""Warm-up before ready: each worker runs one inference per loaded model and one search
statement per loaded model before /readyz may say ready (WARMUP_BEFORE_READY=0: not).

A new release then takes its first requests with the code paths, the BLAS buffers, the
tokenizer, the database connection pool and the statement's plan already in use once, instead
of making its first callers pay for them. It runs in the model-loading thread, right after the
models loaded (src.app); the search statement is retried every second while the database does
not answer (the readiness check names why), until it runs or the app stops.

The readiness check "warmup": "ok" once done, "off (WARMUP_BEFORE_READY=0)" when switched off;
otherwise what it waits for ("waiting for the models to load", "running", or the failure).
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from src.database.documents import search
from src.database.session import error_reason
from src.embeddings import Encoder
from src.embeddings.functional import F32
from src.embeddings.registry import OK, EmbeddingModels
from src.settings import Settings

OFF = "off (WARMUP_BEFORE_READY=0)"
WAITING = "waiting for the models to load"
RUNNING = "running"
NOT_LOADED = 'not run: not every model loaded (see "embeddings")'
TEXT = "A sentence to warm up the model before the first request."
RETRY_S = 1.0
MAX_REASON = 200

logger = logging.getLogger(__name__)


class Warmup:
    """This worker's warm-up: its readiness check, and the run."""

    def __init__(self, enabled: bool, has_models: bool) -> None:
        if not enabled:
            self._passed, self._text = True, OFF
        elif not has_models:
            self._passed, self._text = True, OK  # nothing to run: no model, so no search
        else:
            self._passed, self._text = False, WAITING
        self._stopping = threading.Event()

    @property
    def check(self) -> tuple[bool, str]:
        """(passed, text) of the "warmup" readiness check."""
        return self._passed, self._text

    def not_loaded(self) -> None:
        """Not every model loaded: nothing is run (the "embeddings" check says why)."""
        if not self._passed:
            self._text = NOT_LOADED

    def stop(self) -> None:
        """Make a run waiting to retry give up (the app is shutting down)."""
        self._stopping.set()

    def run(self, engine: Engine, models: EmbeddingModels, settings: Settings) -> bool:
        """One inference per loaded model, then one search statement per loaded model (retried
        every RETRY_S while the database fails); True once both ran."""
        if self._passed:
            return True
        self._text = RUNNING
        started = time.perf_counter()
        vectors: dict[str, F32] = {}
        for repo_id in models.available():
            encoder = models.lookup(repo_id)
            assert isinstance(encoder, Encoder)  # available() lists loaded models only
            try:
                vectors[repo_id] = encoder.encode([TEXT]).vectors[0]
            except Exception as error:  # a broken model: it stays unready, with the reason
                self._text = f"inference with {repo_id} failed: {_first_line(error)}"
                logger.warning("warm-up: %s", self._text)
                return False
        inference_s = time.perf_counter() - started
        search_s = self._search_until_it_runs(engine, vectors, settings)
        if search_s is None:
            return False
        self._passed, self._text = True, OK
        logger.info(
            "warm-up: %d inference(s) in %.0f ms, %d search statement(s) in %.0f ms",
            len(vectors),
            inference_s * 1000,
            len(vectors),
            search_s * 1000,
        )
        return True

    def _search_until_it_runs(
        self, engine: Engine, vectors: dict[str, F32], settings: Settings
    ) -> float | None:
        """Seconds the search statements took; None if the app stopped while they failed."""
        logged = False
        while True:
            started = time.perf_counter()
            try:
                with engine.connect() as connection:
                    for repo_id, vector in vectors.items():
                        search(
                            connection,
                            query=vector,
                            model=repo_id,
                            k=1,
                            collection=None,
                            ef_search=settings.search_ef_search,
                        )
                return time.perf_counter() - started
            except SQLAlchemyError as error:
                reason = error_reason(error, settings)
                self._text = f"search statement failed (retried every {RETRY_S:g} s): {reason}"
                if not logged:  # once, not every second
                    logger.warning("warm-up: search statement failed, retrying: %s", reason)
                    logged = True
            if self._stopping.wait(RETRY_S):
                return None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:MAX_REASON] if lines else type(error).__name__
