"""Documents with embeddings: insert, nearest-neighbour search in SQL, backfill of missing ones.

Search uses pgvector (migration 0003): `embedding_vector` holds each vector (derived from the
REAL[] `embedding` by a trigger while that column exists), and a partial HNSW index per
dimension (`embedding_vector::vector(N)`, cosine) serves `ORDER BY distance LIMIT k` for the
indexed dimensions: approximate, recall@10 measured in tests/test_search_index.py. The planner
scans instead (exact) where that is cheaper, i.e. for small tables, and for dimensions without
an index. The score is cosine similarity, 1 - cosine distance (the vectors are L2-normalized).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, TextClause, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine

from src.database.models import Collection, Document
from src.embeddings.functional import F32
from src.settings import DEFAULT_SEARCH_EF_SEARCH

BACKFILL_BATCH = 32

# How the index scan runs, for one transaction: pgvector's hnsw.ef_search (candidates kept, the
# search setting SEARCH_EF_SEARCH), iterative scans in strict order (more candidates when the
# model/collection filter drops some), and no sequential scan (see search_settings).
SETTINGS_SQL = text(
    "SELECT set_config('hnsw.ef_search', :ef, true), "
    "set_config('hnsw.iterative_scan', 'strict_order', true), "
    "set_config('enable_seqscan', 'off', true)"
)


def search_sql(dimension: int) -> TextClause:
    """The search for one dimension; N is written into the SQL (not bound) so the planner
    matches the partial index `WHERE embedding_dim = N` in every plan, generic ones included.
    Rows of another model or dimension are never compared: their vectors live in another
    space."""
    distance = (
        f"CAST(d.embedding_vector AS vector({dimension})) "
        f"<=> CAST(CAST(:query AS float4[]) AS vector({dimension}))"
    )
    dimension = int(dimension)  # the only value formatted into the SQL (S608): a number
    return text(
        f"""
        SELECT d.id, d.title, d.body, 1 - ({distance}) AS score
          FROM documents AS d
         WHERE d.embedding_dim = {dimension}
           AND d.embedding_vector IS NOT NULL
           AND d.embedding_model = :model
           AND (CAST(:collection_id AS bigint) IS NULL OR d.collection_id = :collection_id)
         ORDER BY {distance}
         LIMIT :k
        """  # noqa: S608
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
    connection: Connection,
    *,
    query: F32,
    model: str,
    k: int,
    collection: int | None,
    ef_search: int = DEFAULT_SEARCH_EF_SEARCH,
) -> list[Hit]:
    """The k documents embedded with `model` nearest to `query`, best first; the HNSW scan
    keeps `ef_search` candidates (settings.SEARCH_EF_SEARCH)."""
    parameters = search_settings(connection, query, model, k, collection, ef_search)
    rows = connection.execute(search_sql(len(query)), parameters).all()
    return [Hit(row.id, row.title, row.body, float(row.score)) for row in rows]


def search_settings(
    connection: Connection,
    query: F32,
    model: str,
    k: int,
    collection: int | None,
    ef_search: int = DEFAULT_SEARCH_EF_SEARCH,
) -> dict[str, object]:
    """Set the index scan's parameters for the transaction; search_sql()'s parameters.

    Sequential scans are ruled out (enable_seqscan off, for this transaction only) so the
    HNSW index serves every indexed dimension: with ef_search at 400 the planner would scan a
    table of 10,000 rows instead (an exact scan costs it about the same there). A dimension
    without an index, or a small collection (through its unique index), is still searched
    exactly: the setting only makes a full scan the last resort."""
    connection.execute(SETTINGS_SQL, {"ef": str(ef_search)})
    return {"query": _floats(query), "model": model, "collection_id": collection, "k": k}


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
