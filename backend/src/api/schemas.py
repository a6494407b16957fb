"""Request and response bodies of the /v1 API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


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


# ---- POST /v1/embeddings (the OpenAI embeddings API's shape)


class EmbeddingRequest(BaseModel):
    input: str | list[str] = Field(
        description="A text or a list of texts; none may be empty, none longer than "
        "EMBEDDINGS_MAX_INPUT_CHARS characters (20000 by default). Inputs longer than the "
        "model's max_seq_length (256 tokens for all-MiniLM-L6-v2) are truncated.",
        examples=["The quick brown fox", ["first text", "second text"]],
    )
    model: str = Field(
        description="Repo id of a model of HF_MODEL_REPOS, as GET /v1/models lists it.",
        examples=["sentence-transformers/all-MiniLM-L6-v2"],
    )
    encoding_format: Literal["float", "base64"] = Field(
        default="float",
        description='"base64": each embedding as base64 of little-endian float32 values.',
    )


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int = Field(description="Tokens the model read, special tokens included.")
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


# ---- POST /v1/documents, GET /v1/search


class DocumentCreate(BaseModel):
    text: str = Field(
        description="The document's text; embedded and stored. Not empty, at most "
        "EMBEDDINGS_MAX_INPUT_CHARS characters (20000 by default)."
    )
    title: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="Unique within the collection; default: the text's first line (80 chars).",
    )
    collection: str = Field(
        default="default", min_length=1, max_length=200, description="An existing collection."
    )
    model: str | None = Field(
        default=None,
        description="Repo id of a model of HF_MODEL_REPOS; default: the first one.",
        examples=["sentence-transformers/all-MiniLM-L6-v2"],
    )


class DocumentStored(BaseModel):
    id: int
    collection: str
    title: str
    created_at: datetime
    model: str = Field(description="The model that computed the stored embedding.")
    dim: int = Field(description="The embedding's dimension.")


class SearchHit(BaseModel):
    id: int
    title: str
    text: str
    score: float = Field(description="Cosine similarity to the query, -1..1.")


class SearchResults(BaseModel):
    object: Literal["list"] = "list"
    data: list[SearchHit]
    model: str
