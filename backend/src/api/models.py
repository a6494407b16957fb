"""GET /v1/models and /v1/models/{id}: the configured models that are usable from the cache
(offline, no Hub), in the OpenAI API's shape with the cache's details as extra fields."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter

from src.api.auth import READ, RESPONSES
from src.api.deps import SettingsDep
from src.api.errors import ApiError, error_responses
from src.api.schemas import Model, ModelFile, ModelList
from src.model_cache.manifest import CachedModel, ModelCacheError, verify
from src.settings import Settings

router = APIRouter(prefix="/v1", tags=["models"], dependencies=[READ], responses=RESPONSES)


@router.get("/models")
def list_models(settings: SettingsDep) -> ModelList:
    """Models of HF_MODEL_REPOS found in the cache manifest with a complete snapshot, each as
    OpenAI lists a model (`id` is the repo id) plus its revision, commit, files and bytes."""
    return ModelList(data=[m for m in _cached(settings).values() if isinstance(m, Model)])


@router.get(
    "/models/{model:path}",
    responses=error_responses(
        {404: "not a model of HF_MODEL_REPOS, or not in the cache; the message says which"}
    ),
)
def get_model(model: str, settings: SettingsDep) -> Model:
    """One model of GET /v1/models by its repo id, e.g.
    /v1/models/sentence-transformers/all-MiniLM-L6-v2."""
    cached = _cached(settings)
    found = cached.get(model)
    if isinstance(found, Model):
        return found
    if isinstance(found, ModelCacheError):
        message = f"model {model!r} is configured but not usable from the cache: {found}"
    else:
        available = ", ".join(m.id for m in cached.values() if isinstance(m, Model)) or "none"
        message = f"model {model!r} not found; available models: {available}"
    raise ApiError(404, message, param="model", code="model_not_found")


def _cached(settings: Settings) -> dict[str, Model | ModelCacheError]:
    """Each model of HF_MODEL_REPOS, or why it is not usable from the cache."""
    found: dict[str, Model | ModelCacheError] = {}
    for spec in settings.models:
        try:
            found[spec.repo_id] = _model(verify(settings.hf_home, spec))
        except ModelCacheError as error:
            found[spec.repo_id] = error  # /readyz names it too
    return found


def _model(cached: CachedModel) -> Model:
    return Model(
        id=cached.repo_id,
        created=_unix_time(cached.fetched_at),
        owned_by=cached.repo_id.split("/", 1)[0],
        revision=cached.revision,
        commit=cached.commit,
        files=[ModelFile(path=f.path, size=f.size) for f in cached.files],
        bytes=cached.bytes,
    )


def _unix_time(iso: str) -> int:
    """The manifest's fetched_at (ISO 8601, with its offset) in Unix seconds; 0 if unreadable."""
    try:
        return int(datetime.fromisoformat(iso).timestamp())
    except ValueError:
        return 0
