"""POST /v1/embeddings: sentence embeddings in the OpenAI embeddings API's shape."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
from fastapi import APIRouter, Request, Response

from src.api.auth import READ, RESPONSES
from src.api.deps import BatchersDep, EmbeddingModelsDep, SettingsDep
from src.api.encoders import check_length, encoder_for
from src.api.errors import ApiError, error_responses
from src.api.schemas import Embedding, EmbeddingList, EmbeddingRequest, EmbeddingUsage
from src.embeddings import Encoded
from src.embeddings.batching import Batcher
from src.embeddings.functional import F32
from src.settings import Settings

router = APIRouter(prefix="/v1", tags=["embeddings"], dependencies=[READ], responses=RESPONSES)
# What the access log shows for a request whose client went away before its answer (as nginx).
CLIENT_CLOSED = 499


@router.post(
    "/embeddings",
    summary="Create embeddings",
    response_model=EmbeddingList,
    responses=error_responses(
        {
            404: "the model is not loaded here; the message names those that are",
            413: "the request body is larger than MAX_REQUEST_BODY_BYTES (4 MiB by default)",
            422: "an empty input, more inputs than EMBEDDINGS_MAX_INPUTS, an input longer than "
            "EMBEDDINGS_MAX_INPUT_CHARS characters, token ids, or dimensions other than the "
            "model's; the message names it, `param` is the field",
            503: "the model is still loading, or failed to load (see /readyz)",
        }
    ),
)
async def create_embeddings(
    body: EmbeddingRequest,
    models: EmbeddingModelsDep,
    settings: SettingsDep,
    batchers: BatchersDep,
    request: Request,
) -> EmbeddingList | Response:
    """Embed one text or a list of texts with a model of HF_MODEL_REPOS (OpenAI-compatible).

    `{"input": "text" | ["text", ...], "model": "<repo id>"}` answers
    `{"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [...]}],
    "model": ..., "usage": {"prompt_tokens": n, "total_tokens": n}}`, one embedding per
    input, in input order. The vectors are those sentence-transformers computes for the
    model (L2-normalized when the model has a Normalize module, as all-MiniLM-L6-v2 does).
    Inputs past the model's max_seq_length are truncated; the token counts are the tokens
    the model read, special tokens included. At most EMBEDDINGS_MAX_INPUTS inputs (64 by
    default) per request, each at most EMBEDDINGS_MAX_INPUT_CHARS characters long (20000 by
    default; a longer input is refused, not truncated). `dimensions` may only be the model's
    own dimension: embeddings are never shortened. `user` is accepted and ignored. Errors come
    as OpenAI's `{"error": {"message", "type", "param", "code"}}`.
    """
    texts = _texts(body.input, settings)
    encoder = encoder_for(models, body.model)
    _check_dimensions(body.dimensions, body.model, encoder.dimension)
    # Concurrent requests share forward passes (src.embeddings.batching).
    encoded = await _embed_while_connected(request, batchers.of(encoder, body.model), texts)
    if encoded is None:
        return Response(status_code=CLIENT_CLOSED)
    tokens = sum(encoded.token_counts)
    return EmbeddingList(
        data=[
            Embedding(index=index, embedding=_format(vector, body.encoding_format))
            for index, vector in enumerate(encoded.vectors)
        ],
        model=body.model,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )


async def _embed_while_connected(
    request: Request, batcher: Batcher, texts: list[str]
) -> Encoded | None:
    """The texts' embeddings; None if the client disconnected first (its request then leaves
    the batcher's queue, or its rows are dropped if their pass already runs)."""
    work = asyncio.ensure_future(batcher.embed(texts))
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not work.done():
            work.cancel()
    return work.result() if work.done() and not work.cancelled() else None


async def _disconnected(request: Request) -> None:
    """Returns once the client is gone (the body has been read: the server's next message
    is http.disconnect, sent when the connection closes)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _texts(value: str | list[str], settings: Settings) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    limit = settings.embeddings_max_inputs
    if not texts:
        raise ApiError(
            422, "input is an empty list: give at least one text", param="input", code="empty_input"
        )
    if len(texts) > limit:
        raise ApiError(
            422,
            f"input has {len(texts)} texts, more than the {limit} allowed per request "
            "(EMBEDDINGS_MAX_INPUTS)",
            param="input",
            code="too_many_inputs",
        )

    def where(index: int) -> str:
        return "input" if isinstance(value, str) else f"input[{index}]"

    empty = next((index for index, text in enumerate(texts) if not text), None)
    if empty is not None:
        raise ApiError(
            422,
            f"{where(empty)} is an empty string: every input needs some text",
            param=where(empty),
            code="empty_input",
        )
    for index, text in enumerate(texts):
        check_length(where(index), text, settings)
    return texts


def _check_dimensions(requested: int | None, model: str, dimension: int) -> None:
    """Only the model's own dimension: a model not trained for it (Matryoshka) gives worse
    embeddings when they are cut short, and this server does not know which models were."""
    if requested is not None and requested != dimension:
        raise ApiError(
            422,
            f"dimensions={requested} is not supported: {model} gives {dimension}-dimensional "
            f"embeddings and this server does not shorten them; leave dimensions out "
            f"or set it to {dimension}",
            param="dimensions",
            code="dimensions_not_supported",
        )


def _format(vector: F32, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    values: list[float] = vector.astype(np.float64).tolist()
    return values
