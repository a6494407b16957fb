"""POST /v1/documents (store a text with its embedding) and GET /v1/search (nearest ones).

The text or query is embedded through the model's batcher (src.embeddings.batching), so it
shares forward passes with concurrent POST /v1/embeddings and other searches; the database calls
run in worker threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Query
from pydantic import AfterValidator
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from src.api.auth import READ, RESPONSES, WRITE
from src.api.deps import BatchersDep, EmbeddingModelsDep, EngineDep, MetricsDep, SettingsDep
from src.api.encoders import check_length, encoder_for, model_or_default
from src.api.errors import ApiError, error_responses
from src.api.schemas import (
    DocumentCreate,
    DocumentStored,
    SearchHit,
    SearchResults,
    no_nul,
)
from src.database.documents import Hit, Stored, collection_id, insert_document, search
from src.database.session import error_reason
from src.embeddings.batching import Batcher
from src.embeddings.functional import F32
from src.settings import Settings

router = APIRouter(prefix="/v1", tags=["documents"], responses=RESPONSES)
DEFAULT_TITLE_CHARS = 80
MAX_K = 50
T = TypeVar("T")


@router.post(
    "/documents",
    status_code=201,
    dependencies=[WRITE],
    responses=error_responses(
        {
            404: "unknown model or collection; the message names it",
            409: "the collection already has a document with this title",
            422: "empty text, or text longer than EMBEDDINGS_MAX_INPUT_CHARS",
            503: "the model is still loading, or the database is unavailable",
        }
    ),
)
async def create_document(
    body: DocumentCreate,
    models: EmbeddingModelsDep,
    settings: SettingsDep,
    engine: EngineDep,
    batchers: BatchersDep,
) -> DocumentStored:
    """Store `text` in `collection` with its embedding by `model` (default: the first model of
    HF_MODEL_REPOS); GET /v1/search then finds it. The title defaults to the text's first line
    (80 characters) and is unique within the collection. The text may be at most
    EMBEDDINGS_MAX_INPUT_CHARS characters long (20000 by default)."""
    if not body.text.strip():
        raise ApiError(
            422, "text is empty: a document needs some text", param="text", code="empty_input"
        )
    check_length("text", body.text, settings)
    model = model_or_default(body.model, settings)
    encoder = encoder_for(models, model)
    title = body.title or body.text.strip().splitlines()[0].strip()[:DEFAULT_TITLE_CHARS]
    # The collection is checked before the (CPU-bound) encode, the row inserted after it.
    collection = await anyio.to_thread.run_sync(_collection, engine, settings, body.collection)
    vector = await _embed(batchers.of(encoder, model), body.text)

    def insert() -> Stored | None:
        with engine.begin() as connection:
            return insert_document(
                connection,
                collection=collection,
                title=title,
                body=body.text,
                model=model,
                vector=vector,
            )

    stored = await anyio.to_thread.run_sync(_database, insert, settings)
    if stored is None:
        raise ApiError(
            409,
            f"collection {body.collection!r} already has a document titled {title!r}",
            param="title",
            code="duplicate_title",
        )
    return DocumentStored(
        id=stored.id,
        collection=body.collection,
        title=title,
        created_at=stored.created_at,
        model=model,
        dim=len(vector),
    )


@router.get(
    "/search",
    dependencies=[READ],
    responses=error_responses(
        {
            404: "unknown model or collection; the message names it",
            422: "empty q, q longer than EMBEDDINGS_MAX_INPUT_CHARS, or k outside 1..50",
            503: "the model is still loading, or the database is unavailable",
        }
    ),
)
async def search_documents(
    q: Annotated[
        str, Query(description="The query text; at most EMBEDDINGS_MAX_INPUT_CHARS characters.")
    ],
    models: EmbeddingModelsDep,
    settings: SettingsDep,
    engine: EngineDep,
    batchers: BatchersDep,
    metrics: MetricsDep,
    k: Annotated[int, Query(ge=1, le=MAX_K, description="How many documents.")] = 5,
    collection: Annotated[
        str | None, AfterValidator(no_nul), Query(description="Only this collection.")
    ] = None,
    model: Annotated[str | None, Query(description="Default: first of HF_MODEL_REPOS.")] = None,
) -> SearchResults:
    """The k documents nearest to `q` by cosine similarity, best first, among those embedded
    with `model`; documents without an embedding yet are skipped. `q` may be at most
    EMBEDDINGS_MAX_INPUT_CHARS characters long (20000 by default)."""
    if not q.strip():
        raise ApiError(
            422, "q is empty: give some text to search for", param="q", code="empty_input"
        )
    check_length("q", q, settings)
    name = model_or_default(model, settings)
    encoder = encoder_for(models, name)
    collection_filter = None
    if collection is not None:
        collection_filter = await anyio.to_thread.run_sync(
            _collection, engine, settings, collection
        )
    query = await _embed(batchers.of(encoder, name), q)

    def nearest() -> list[Hit]:
        with engine.connect() as connection:
            started = time.perf_counter()
            hits = search(
                connection,
                query=query,
                model=name,
                k=k,
                collection=collection_filter,
                ef_search=settings.search_ef_search,
            )
            if metrics is not None:
                metrics.search_statement.observe(time.perf_counter() - started)
            return hits

    hits = await anyio.to_thread.run_sync(_database, nearest, settings)
    return SearchResults(data=[SearchHit(**hit._asdict()) for hit in hits], model=name)


async def _embed(batcher: Batcher, text: str) -> F32:
    encoded = await batcher.embed([text])
    vector: F32 = encoded.vectors[0]
    return vector


def _collection(engine: Engine, settings: Settings, name: str) -> int:
    found = _database(lambda: _lookup(engine, name), settings)
    if found is None:
        raise ApiError(
            404, f"collection {name!r} not found", param="collection", code="collection_not_found"
        )
    return found


def _lookup(engine: Engine, name: str) -> int | None:
    with engine.connect() as connection:
        return collection_id(connection, name)


def _database(call: Callable[[], T], settings: Settings) -> T:
    try:
        return call()
    except SQLAlchemyError as error:
        raise ApiError(
            503,
            f"database unavailable: {error_reason(error, settings)}",
            code="database_unavailable",
        ) from None
