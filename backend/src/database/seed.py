"""Idempotent seed data: the "default" collection and a few sample documents.

Rows are inserted only when missing (ON CONFLICT DO NOTHING on the natural keys), so running
the seed any number of times leaves exactly the same rows; existing rows are never changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from src.database.models import Collection, Document

DEFAULT_COLLECTION = "default"
DEFAULT_DESCRIPTION = "Sample documents added at installation."
SAMPLE_DOCUMENTS: tuple[tuple[str, str], ...] = (
    (
        "Welcome",
        "This collection was created when the service was installed. It holds a few short "
        "documents to show that the database path works end to end.",
    ),
    (
        "Models",
        "Hugging Face models are fetched once into the model cache volume and served offline.",
    ),
    (
        "Health checks",
        "GET /healthz answers while the process is alive; GET /readyz checks the database, "
        "the schema version and the model cache.",
    ),
)


@dataclass(frozen=True)
class SeedResult:
    added: int
    present: int


def seed(connection: Connection) -> SeedResult:
    """Insert the missing seed rows; the caller owns the transaction."""
    # RETURNING yields a row only for an inserted row: that is the count of rows added.
    added = len(
        connection.execute(
            insert(Collection)
            .values(name=DEFAULT_COLLECTION, description=DEFAULT_DESCRIPTION)
            .on_conflict_do_nothing(index_elements=[Collection.name])
            .returning(Collection.id)
        ).all()
    )
    collection_id = connection.execute(
        select(Collection.id).where(Collection.name == DEFAULT_COLLECTION)
    ).scalar_one()
    for title, body in SAMPLE_DOCUMENTS:
        added += len(
            connection.execute(
                insert(Document)
                .values(collection_id=collection_id, title=title, body=body)
                .on_conflict_do_nothing(index_elements=[Document.collection_id, Document.title])
                .returning(Document.id)
            ).all()
        )
    titles = [title for title, _ in SAMPLE_DOCUMENTS]
    documents_present = connection.execute(
        select(func.count(Document.id)).where(
            Document.collection_id == collection_id, Document.title.in_(titles)
        )
    ).scalar_one()
    return SeedResult(added=added, present=1 + int(documents_present))
