"""Documents with embeddings: insert, nearest-neighbour search in SQL, backfill of missing ones.

Search runs on plain PostgreSQL (no pgvector): the vectors are L2-normalized REAL[] columns,
so cosine similarity is the dot product, `sum(a * b)` over `unnest(embedding, query)`. That is
a sequential scan, linear in the rows of the searched model: measured ~0.25-0.3 s for 5,000
documents of 384 dimensions (PostgreSQL 15, test cluster), against ~0.85 s for fetching the
vectors and ranking them in NumPy (the transfer dominates). Past tens of thousands of rows an
index (pgvector, where it may be installed) is the next step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine

from src.database.models import Collection, Document
from src.embeddings.functional import F32

BACKFILL_BATCH = 32

# Rows of another model or dimension are never compared: their vectors live in another space.
_SEARCH = text(
    """
    SELECT d.id, d.title, d.body,
           (SELECT sum(pair.a * pair.b)
              FROM unnest(d.embedding, CAST(:query AS float8[])) AS pair(a, b)) AS score
      FROM documents AS d
     WHERE d.embedding IS NOT NULL
       AND d.embedding_model = :model
       AND d.embedding_dim = :dim
       AND (CAST(:collection_id AS bigint) IS NULL OR d.collection_id = :collection_id)
     ORDER BY score DESC, d.id
     LIMIT :k
    """
)


class Stored(NamedTuple):
    id: int
    created_at: datetime


class Hit(NamedTuple):
    id: int
    title: str
    text: str
    score: float


def collection_id(connection: Connection, name: str) -> int | None:
    return connection.execute(
        select(Collection.id).where(Collection.name == name)
    ).scalar_one_or_none()


def insert_document(
    connection: Connection,
    *,
    collection: int,
    title: str,
    body: str,
    model: str,
    vector: F32,
) -> Stored | None:
    """The new row's id and created_at; None if the collection has a document of that title."""
    row = connection.execute(
        insert(Document)
        .values(
            collection_id=collection,
            title=title,
            body=body,
            embedding=_floats(vector),
            embedding_model=model,
            embedding_dim=len(vector),
        )
        .on_conflict_do_nothing(index_elements=[Document.collection_id, Document.title])
        .returning(Document.id, Document.created_at)
    ).first()
    return None if row is None else Stored(row.id, row.created_at)


def search(
    connection: Connection, *, query: F32, model: str, k: int, collection: int | None
) -> list[Hit]:
    """The k documents embedded with `model` nearest to `query`, best first."""
    rows = connection.execute(
        _SEARCH,
        {
            "query": _floats(query),
            "model": model,
            "dim": len(query),
            "collection_id": collection,
            "k": k,
        },
    ).all()
    return [Hit(row.id, row.title, row.body, float(row.score)) for row in rows]


def backfill(
    engine: Engine,
    *,
    model: str,
    configured: Sequence[str],
    encode: Callable[[list[str]], F32],
    batch: int = BACKFILL_BATCH,
) -> int:
    """Embed, with `model`, the documents that have no embedding or one of a model that is no
    longer configured; returns how many rows this call updated.

    Idempotent and safe to run in several processes at once: each batch is read, encoded
    outside any transaction, then written only where the row still needs it; an id cursor
    makes every row visited at most once per call.
    """
    embedded, after = 0, 0
    while True:
        with engine.connect() as connection:
            rows = connection.execute(
                select(Document.id, Document.body)
                .where(_needs_embedding(configured), Document.id > after)
                .order_by(Document.id)
                .limit(batch)
            ).all()
        if not rows:
            return embedded
        vectors = encode([row.body for row in rows])
        with engine.begin() as connection:
            for row, vector in zip(rows, vectors, strict=True):
                result = connection.execute(
                    update(Document)
                    .where(Document.id == row.id, _needs_embedding(configured))
                    .values(
                        embedding=_floats(vector),
                        embedding_model=model,
                        embedding_dim=len(vector),
                    )
                )
                embedded += result.rowcount
        after = rows[-1].id


def _needs_embedding(configured: Sequence[str]) -> ColumnElement[bool]:
    return or_(Document.embedding.is_(None), Document.embedding_model.not_in(configured))


def _floats(vector: F32) -> list[float]:
    values: list[float] = vector.astype(float).tolist()
    return values
