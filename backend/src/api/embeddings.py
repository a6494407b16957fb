"""POST /v1/embeddings: sentence embeddings in the OpenAI embeddings API's shape."""

from __future__ import annotations

import base64

import anyio.to_thread
import numpy as np
from fastapi import APIRouter, HTTPException

from src.api.deps import EmbeddingModelsDep, EncodeLimiterDep, SettingsDep
from src.api.encoders import check_length, encoder_for
from src.api.schemas import Embedding, EmbeddingList, EmbeddingRequest, EmbeddingUsage
from src.embeddings.functional import F32
from src.settings import Settings

router = APIRouter(prefix="/v1", tags=["embeddings"])


@router.post(
    "/embeddings",
    summary="Create embeddings",
    responses={
        404: {"description": "the model is not loaded here; the message names those that are"},
        422: {
            "description": "an empty input, more inputs than EMBEDDINGS_MAX_INPUTS, or an input "
            "longer than EMBEDDINGS_MAX_INPUT_CHARS characters; the message names it"
        },
        503: {"description": "the model is still loading, or failed to load (see /readyz)"},
    },
)
async def create_embeddings(
    body: EmbeddingRequest,
    models: EmbeddingModelsDep,
    settings: SettingsDep,
    limiter: EncodeLimiterDep,
) -> EmbeddingList:
    """Embed one text or a list of texts with a model of HF_MODEL_REPOS (OpenAI-compatible).

    `{"input": "text" | ["text", ...], "model": "<repo id>"}` answers
    `{"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [...]}],
    "model": ..., "usage": {"prompt_tokens": n, "total_tokens": n}}`, one embedding per
    input, in input order. The vectors are those sentence-transformers computes for the
    model (L2-normalized when the model has a Normalize module, as all-MiniLM-L6-v2 does).
    Inputs past the model's max_seq_length are truncated; the token counts are the tokens
    the model read, special tokens included. At most EMBEDDINGS_MAX_INPUTS inputs (64 by
    default) per request, each at most EMBEDDINGS_MAX_INPUT_CHARS characters long (20000 by
    default; a longer input is refused, not truncated).
    """
    texts = _texts(body.input, settings)
    encoder = encoder_for(models, body.model)
    # CPU-bound: in a worker thread, one request at a time (BLAS already uses every core).
    encoded = await anyio.to_thread.run_sync(encoder.encode, texts, limiter=limiter)
    tokens = sum(encoded.token_counts)
    return EmbeddingList(
        data=[
            Embedding(index=index, embedding=_format(vector, body.encoding_format))
            for index, vector in enumerate(encoded.vectors)
        ],
        model=body.model,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )


def _texts(value: str | list[str], settings: Settings) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    limit = settings.embeddings_max_inputs
    if not texts:
        raise HTTPException(422, "input is an empty list: give at least one text")
    if len(texts) > limit:
        raise HTTPException(
            422, f"input has {len(texts)} texts, more than the {limit} allowed per request"
        )

    def where(index: int) -> str:
        return "input" if isinstance(value, str) else f"input[{index}]"

    empty = next((index for index, text in enumerate(texts) if not text), None)
    if empty is not None:
        raise HTTPException(422, f"{where(empty)} is an empty string: every input needs some text")
    for index, text in enumerate(texts):
        check_length(where(index), text, settings)
    return texts


def _format(vector: F32, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    values: list[float] = vector.astype(np.float64).tolist()
    return values
