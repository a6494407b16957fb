"""Request-scoped access to what the app's lifespan set up."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.engine import Engine

from src.embeddings.batching import Batchers
from src.embeddings.registry import EmbeddingModels
from src.metrics.instruments import Metrics
from src.settings import Settings


def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def get_engine(request: Request) -> Engine:
    return cast(Engine, request.app.state.engine)


def get_embedding_models(request: Request) -> EmbeddingModels:
    return cast(EmbeddingModels, request.app.state.embedding_models)


def get_batchers(request: Request) -> Batchers:
    return cast(Batchers, request.app.state.batchers)


def get_metrics(request: Request) -> Metrics | None:
    """The worker's instruments; None when metrics are off."""
    return cast(Metrics | None, getattr(request.app.state, "metrics", None))


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
EmbeddingModelsDep = Annotated[EmbeddingModels, Depends(get_embedding_models)]
BatchersDep = Annotated[Batchers, Depends(get_batchers)]
MetricsDep = Annotated[Metrics | None, Depends(get_metrics)]
