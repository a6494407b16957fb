"""Liveness (/healthz) and readiness (/readyz)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from src.api.deps import EmbeddingModelsDep, EngineDep, SettingsDep
from src.readiness import check_all

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
    """200 when the database answers, its schema is at the migration head and every
    configured model is in the cache at its revision and loaded for embeddings; 503
    otherwise (while the models load at start-up, "embeddings" says "loading")."""
    readiness = check_all(engine, settings, request.app.state.migration_head, embedding_models)
    _log_transition(request, readiness.ready, readiness.checks)
    body: dict[str, Any] = {
        "status": "ready" if readiness.ready else "unready",
        "checks": readiness.checks,
    }
    return JSONResponse(body, status_code=200 if readiness.ready else 503)


def _log_transition(request: Request, ready: bool, checks: dict[str, str]) -> None:
    """One log line when readiness changes, not one per probe."""
    if getattr(request.app.state, "last_ready", None) == ready:
        return
    request.app.state.last_ready = ready
    if ready:
        logger.info("readyz: ready")
    else:
        failing = ", ".join(f"{name}: {value}" for name, value in checks.items() if value != "ok")
        logger.warning("readyz: unready (%s)", failing)
