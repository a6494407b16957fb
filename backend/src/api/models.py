"""GET /v1/models: the configured models that are usable from the cache (offline, no Hub)."""

from __future__ import annotations

from fastapi import APIRouter

from src.api.deps import SettingsDep
from src.api.schemas import ModelEntry, ModelFile, ModelList
from src.model_cache.manifest import ModelCacheError, verify

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models")
def list_models(settings: SettingsDep) -> ModelList:
    """Models of HF_MODEL_REPOS found in the cache manifest with a complete snapshot."""
    data = []
    for spec in settings.models:
        try:
            model = verify(settings.hf_home, spec)
        except ModelCacheError:
            continue  # /readyz names the reason
        data.append(
            ModelEntry(
                repo_id=model.repo_id,
                revision=model.revision,
                commit=model.commit,
                files=[ModelFile(path=f.path, size=f.size) for f in model.files],
                bytes=model.bytes,
            )
        )
    return ModelList(data=data)
