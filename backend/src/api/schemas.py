"""Request and response bodies of the /v1 API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError


class ModelFile(BaseModel):
    path: str
    size: int


class Model(BaseModel):
    """A model in the OpenAI API's shape (`id`, `object`, `created`, `owned_by`), with what the
    model cache holds of it as extra fields."""

    id: str = Field(
        description="The repo id; what POST /v1/embeddings takes as `model`.",
        examples=["sentence-transformers/all-MiniLM-L6-v2"],
    )
    object: Literal["model"] = "model"
    created: int = Field(description="When the snapshot was cached (Unix time, seconds).")
    owned_by: str = Field(
        description="The repo's organisation.", examples=["sentence-transformers"]
    )
    revision: str = Field(description="The branch, tag or commit HF_MODEL_REPOS asks for.")
    commit: str = Field(description="The commit of the cached snapshot.")
    files: list[ModelFile] = Field(description="The cached files with their sizes in bytes.")
    bytes: int = Field(description="The size of those files together.")
    runtime: Literal["onnxruntime", "numpy"] | None = Field(
        description=(
            "What runs the model in this worker: ONNX Runtime, from the ONNX file HF_ONNX_FILES "
            "names for it, or the NumPy BERT, from model.safetensors when the repo has no such "
            "file. null while the model loads, or when its load failed (GET /readyz says why)."
        ),
        examples=["onnxruntime"],
    )
    weights_file: str | None = Field(
        description="The cached file the runtime reads the weights from; null as runtime.",
        examples=["onnx/model.onnx"],
    )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


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


TEXT_ONLY = (
    "input holds token ids; this server embeds text only, so send strings "
    "(with LangChain's OpenAIEmbeddings, set check_embedding_ctx_length=False)"
)


def text_input(value: Any) -> Any:
    """`input` is a string or a list of strings; else one line naming the first bad item.
    (Token ids, which OpenAI also takes, mean nothing to another model's vocabulary.)"""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise _input_error("input", value, "a string or a list of strings")
    if value and all(_is_token_ids(item) for item in value):
        raise PydanticCustomError("token_ids", TEXT_ONLY, {"param": "input"})
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise _input_error(f"input[{index}]", item, "a string")
    return value


def _is_token_ids(value: Any) -> bool:
    def is_id(item: Any) -> bool:
        return isinstance(item, int) and not isinstance(item, bool)

    return is_id(value) or (isinstance(value, list) and all(is_id(item) for item in value))


def _input_error(param: str, value: Any, expected: str) -> PydanticCustomError:
    return PydanticCustomError(
        "text_type",
        "{param} must be {expected}, not {found}",
        {"param": param, "expected": expected, "found": _json_type(value)},
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    return "an object"


class EmbeddingRequest(BaseModel):
    # As OpenAI's API does: an unknown field is refused, not silently ignored.
    model_config = ConfigDict(extra="forbid")

    input: Annotated[str | list[str], BeforeValidator(text_input)] = Field(
        description="A text or a list of texts; none may be empty, none longer than "
        "EMBEDDINGS_MAX_INPUT_CHARS characters (20000 by default), at most "
        "EMBEDDINGS_MAX_INPUTS texts (64 by default). Inputs longer than the model's "
        "max_seq_length (256 tokens for all-MiniLM-L6-v2) are truncated. Token ids are "
        "refused: the model has its own vocabulary.",
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
    dimensions: int | None = Field(
        default=None,
        ge=1,
        description="Only the model's own dimension (384 for all-MiniLM-L6-v2) is accepted: "
        "embeddings are never shortened, since truncating those of a model that was not "
        "trained for it (Matryoshka) degrades them.",
    )
    user: str | None = Field(
        default=None, description="Accepted for compatibility with OpenAI's API; ignored."
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


def no_nul(value: str | None) -> str | None:
    """Text that reaches PostgreSQL (stored, or compared with a stored value): its text type
    cannot hold NUL, so one is refused here with a 422 naming the field, before any work."""
    if value is not None and "\x00" in value:
        raise PydanticCustomError(
            "nul_character",
            "must not contain a NUL character (\\u0000): PostgreSQL text cannot hold it",
        )
    return value


# A str field whose value goes to PostgreSQL.
DatabaseText = Annotated[str, AfterValidator(no_nul)]


class DocumentCreate(BaseModel):
    text: DatabaseText = Field(
        description="The document's text; embedded and stored. Not empty, at most "
        "EMBEDDINGS_MAX_INPUT_CHARS characters (20000 by default)."
    )
    title: DatabaseText | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="Unique within the collection; default: the text's first line (80 chars).",
    )
    collection: DatabaseText = Field(
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
