"""GET /v1/collections: collections with their document counts."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from src.api.auth import RESPONSES, WRITE
from src.api.deps import EngineDep, SettingsDep
from src.api.errors import ApiError, error_responses
from src.api.schemas import CollectionEntry, CollectionList
from src.database.models import Collection, Document
from src.database.session import error_reason

router = APIRouter(prefix="/v1", tags=["collections"], dependencies=[WRITE], responses=RESPONSES)


@router.get("/collections", responses=error_responses({503: "the database is unavailable"}))
def list_collections(engine: EngineDep, settings: SettingsDep) -> CollectionList:
    query = (
        select(
            Collection.id,
            Collection.name,
            Collection.description,
            Collection.created_at,
            func.count(Document.id).label("document_count"),
        )
        .outerjoin(Document, Document.collection_id == Collection.id)
        .group_by(Collection.id)
        .order_by(Collection.name)
    )
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    except SQLAlchemyError as error:
        raise ApiError(
            503,
            f"database unavailable: {error_reason(error, settings)}",
            code="database_unavailable",
        ) from None
    return CollectionList(
        data=[
            CollectionEntry(
                id=row.id,
                name=row.name,
                description=row.description,
                document_count=row.document_count,
                created_at=row.created_at,
            )
            for row in rows
        ]
    )
