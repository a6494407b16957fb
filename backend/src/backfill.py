"""Start-up backfill: embed the documents stored without an embedding (e.g. by the seed, which
runs before the models are in the cache, or by the previous release), once the models loaded.

Runs in the model-loading thread, after loading; one log line with the count. Any failure is
logged as one warning line and leaves the rows for the next start-up (search skips them).
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from src.database.documents import backfill
from src.database.session import error_reason
from src.embeddings import Encoder
from src.embeddings.functional import F32
from src.embeddings.registry import EmbeddingModels
from src.settings import Settings

logger = logging.getLogger(__name__)


def run_backfill(engine: Engine, models: EmbeddingModels, settings: Settings) -> int | None:
    """Documents embedded with the default model (the first of HF_MODEL_REPOS); None when it
    could not run (no model configured or loaded, or a database error)."""
    if not settings.models:
        return None
    model = settings.models[0].repo_id
    encoder = models.lookup(model)
    if not isinstance(encoder, Encoder):
        logger.warning("backfill: skipped, model %s is not loaded", model)
        return None

    def encode(texts: list[str]) -> F32:
        return encoder.encode(texts).vectors

    configured = [spec.repo_id for spec in settings.models]
    try:
        embedded = backfill(engine, model=model, configured=configured, encode=encode)
    except SQLAlchemyError as error:
        logger.warning("backfill: failed: %s", error_reason(error, settings))
        return None
    logger.info("backfill: embedded %d document%s", embedded, "" if embedded == 1 else "s")
    return embedded
