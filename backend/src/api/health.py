"""Liveness (/healthz) and readiness (/readyz).

/readyz answers in full (every check and its text) only to a caller that reaches the backend
directly: the slot's health check, `docker exec`, a test. Through the public proxy, which sets
PUBLIC_HEADER on every request it forwards (docker/proxy/nginx.conf, overwriting whatever a
client sent), it answers the status only: 200 {"status": "ready"} or 503 {"status": "unready"}.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from src.readiness import CachedReadiness, Readiness

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)
# Set (to any value) by the proxy on every request from outside the host.
PUBLIC_HEADER = "X-Nica-Public"


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive; touches nothing else."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        200: {"description": "ready; through the proxy the status only"},
        503: {"description": "unready; every failing check named, except through the proxy"},
    },
)
async def readyz(request: Request) -> JSONResponse:
    """200 when the database answers, its schema is at this release's migration head (or
    ahead of it by backward-compatible migrations only), every configured model is in the
    cache at its revision and loaded for embeddings, and this worker has run one inference per
    model and one search statement ("warmup"); 503 otherwise (while the models load at
    start-up, "embeddings" says "loading"). The result is at most 1 s old. Through the proxy
    (PUBLIC_HEADER set) only the status, without the checks."""
    readiness = await cast(CachedReadiness, request.app.state.readiness).get()
    _log_transition(request, readiness)
    body: dict[str, Any] = {"status": "ready" if readiness.ready else "unready"}
    if PUBLIC_HEADER not in request.headers:
        body["checks"] = readiness.checks
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
