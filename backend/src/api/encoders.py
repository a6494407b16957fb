"""Which encoder serves a request (by repo id, or the default: first of HF_MODEL_REPOS), and
how long a text it is given may be (EMBEDDINGS_MAX_INPUT_CHARS)."""

from __future__ import annotations

from src.api.errors import ApiError
from src.embeddings import Encoder
from src.embeddings.registry import LOADING, EmbeddingModels, Unavailable
from src.settings import Settings

RETRY_AFTER_LOADING_S = "5"


def model_or_default(name: str | None, settings: Settings) -> str:
    """`name`, or the first model of HF_MODEL_REPOS; 404 when none is configured."""
    if name is not None:
        return name
    if not settings.models:
        raise ApiError(
            404,
            "no model given and HF_MODEL_REPOS configures none",
            param="model",
            code="model_not_found",
        )
    return settings.models[0].repo_id


def encoder_for(models: EmbeddingModels, name: str) -> Encoder:
    """The loaded encoder; 404 for a model that is not configured, 503 while it loads."""
    state = models.lookup(name)
    if state is None:
        available = ", ".join(models.available()) or "none"
        raise ApiError(
            404,
            f"model {name!r} not found; available models: {available}",
            param="model",
            code="model_not_found",
        )
    if isinstance(state, Unavailable):
        headers = {"Retry-After": RETRY_AFTER_LOADING_S} if state == LOADING else None
        raise ApiError(
            503,
            f"model {name} is not available: {state.reason}",
            param="model",
            code="model_not_ready",
            headers=headers,
        )
    return state


def check_length(where: str, text: str, settings: Settings) -> None:
    """422 naming `where` (e.g. "input[3]", "q") when `text` is longer than
    EMBEDDINGS_MAX_INPUT_CHARS: the tokenizer reads a text in full before truncating it."""
    limit = settings.embeddings_max_input_chars
    if len(text) > limit:
        raise ApiError(
            422,
            f"{where} has {len(text)} characters, more than the {limit} allowed "
            "(EMBEDDINGS_MAX_INPUT_CHARS)",
            param=where,
            code="input_too_long",
        )
