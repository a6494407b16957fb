"""ORM models (SQLAlchemy 2 declarative). Migrations in migrations/versions/ create the tables.

Migration 0002 added the document embedding as nullable columns of `documents`: the vector
(REAL[], L2-normalized) with the repo id and dimension of the model that computed it; all three
are NULL until the document is embedded (ck_documents_embedding_complete). Migration 0003 added
`embedding_vector` (pgvector), which a trigger derives from `embedding` on every write: it is
not mapped here, only search (src.database.documents) reads it, in SQL.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    REAL,
    BigInteger,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import func as sql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Deterministic constraint names, so later migrations can refer to them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Collection(Base):
    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=sql.now())

    documents: Mapped[list[Document]] = relationship(back_populates="collection")


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("collection_id", "title", name="uq_documents_collection_id_title"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("collections.id", ondelete="CASCADE")
    )
    title: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=sql.now())
    embedding: Mapped[list[float] | None] = mapped_column(ARRAY(REAL, dimensions=1))
    embedding_model: Mapped[str | None] = mapped_column(String(200))
    embedding_dim: Mapped[int | None] = mapped_column(Integer)

    collection: Mapped[Collection] = relationship(back_populates="documents")
