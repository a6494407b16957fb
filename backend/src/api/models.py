"""GET /v1/models and /v1/models/{id}: the configured models that are usable from the cache
(offline, no Hub), in the OpenAI API's shape with the cache's details as extra fields, and the
runtime that serves each one in this worker (its loaded encoder's)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter

from src.api.auth import READ, RESPONSES
from src.api.deps import EmbeddingModelsDep, SettingsDep
from src.api.errors import ApiError, error_responses
from src.api.schemas import Model, ModelFile, ModelList
from src.embeddings import Encoder
from src.embeddings.registry import EmbeddingModels
from src.model_cache.manifest import CachedModel, ModelCacheError, verify
from src.settings import Settings

router = APIRouter(prefix="/v1", tags=["models"], dependencies=[READ], responses=RESPONSES)


@router.get("/models")
def list_models(settings: SettingsDep, models: EmbeddingModelsDep) -> ModelList:
    """Models of HF_MODEL_REPOS found in the cache manifest with a complete snapshot, each as
    OpenAI lists a model (`id` is the repo id) plus its revision, commit, files and bytes, and
    the runtime that serves it (`onnxruntime` or `numpy`, null until it is loaded)."""
    cached = _cached(settings, models)
    return ModelList(data=[m for m in cached.values() if isinstance(m, Model)])


@router.get(
    "/models/{model:path}",
    responses=error_responses(
        {404: "not a model of HF_MODEL_REPOS, or not in the cache; the message says which"}
    ),
)
def get_model(model: str, settings: SettingsDep, models: EmbeddingModelsDep) -> Model:
    """One model of GET /v1/models by its repo id, e.g.
    /v1/models/sentence-transformers/all-MiniLM-L6-v2."""
    cached = _cached(settings, models)
    found = cached.get(model)
    if isinstance(found, Model):
        return found
    if isinstance(found, ModelCacheError):
        message = f"model {model!r} is configured but not usable from the cache: {found}"
    else:
        available = ", ".join(m.id for m in cached.values() if isinstance(m, Model)) or "none"
        message = f"model {model!r} not found; available models: {available}"
    raise ApiError(404, message, param="model", code="model_not_found")


def _cached(settings: Settings, models: EmbeddingModels) -> dict[str, Model | ModelCacheError]:
    """Each model of HF_MODEL_REPOS, or why it is not usable from the cache."""
    found: dict[str, Model | ModelCacheError] = {}
    for spec in settings.models:
        try:
            cached = verify(settings.hf_home, spec)
        except ModelCacheError as error:
            found[spec.repo_id] = error  # /readyz names it too
            continue
        encoder = models.lookup(spec.repo_id)
        found[spec.repo_id] = _model(cached, encoder if isinstance(encoder, Encoder) else None)
    return found


def _model(cached: CachedModel, encoder: Encoder | None) -> Model:
    return Model(
        id=cached.repo_id,
        created=_unix_time(cached.fetched_at),
        owned_by=cached.repo_id.split("/", 1)[0],
        revision=cached.revision,
        commit=cached.commit,
        files=[ModelFile(path=f.path, size=f.size) for f in cached.files],
        bytes=cached.bytes,
        runtime=encoder.runtime if encoder is not None else None,
        weights_file=encoder.weights_file if encoder is not None else None,
    )


def _unix_time(iso: str) -> int:
    """The manifest's fetched_at (ISO 8601, with its offset) in Unix seconds; 0 if unreadable."""
    try:
        return int(datetime.fromisoformat(iso).timestamp())
    except ValueError:
        return 0
