"""Liveness (/healthz) and readiness (/readyz)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from src.api.deps import EmbeddingModelsDep, EngineDep, SettingsDep
from src.database.migrations import release_schema
from src.readiness import Readiness, check_all

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive; touches nothing else."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "unready; every failing check named"}})
def readyz(
    request: Request,
    settings: SettingsDep,
    engine: EngineDep,
    embedding_models: EmbeddingModelsDep,
) -> JSONResponse:
    """200 when the database answers, its schema is at this release's migration head (or
    ahead of it by backward-compatible migrations only), every configured model is in the
    cache at its revision and loaded for embeddings, and this worker has run one inference per
    model and one search statement ("warmup"); 503 otherwise (while the models load at
    start-up, "embeddings" says "loading")."""
    readiness = check_all(
        engine, settings, release_schema(), embedding_models, request.app.state.warmup
    )
    _log_transition(request, readiness)
    body: dict[str, Any] = {
        "status": "ready" if readiness.ready else "unready",
        "checks": readiness.checks,
    }
    return JSONResponse(body, status_code=200 if readiness.ready else 503)


def _log_transition(request: Request, readiness: Readiness) -> None:
    """One log line when readiness changes, not one per probe."""
    if getattr(request.app.state, "last_ready", None) == readiness.ready:
        return
    request.app.state.last_ready = readiness.ready
    if readiness.ready:
        logger.info("readyz: ready")
    else:
        failing = ", ".join(f"{name}: {value}" for name, value in readiness.failing.items())
        logger.warning("readyz: unready (%s)", failing)
