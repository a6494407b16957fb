"""Response bodies of the /v1 API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class ModelFile(BaseModel):
    path: str
    size: int


class ModelEntry(BaseModel):
    repo_id: str
    revision: str
    commit: str
    files: list[ModelFile]
    bytes: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelEntry]


class CollectionEntry(BaseModel):
    id: int
    name: str
    description: str
    document_count: int
    created_at: datetime


class CollectionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CollectionEntry]
