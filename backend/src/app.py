"""The FastAPI application factory; no environment access here (see src.main)."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import CapacityLimiter
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from src import embeddings, telemetry, worker_readiness
from src.api import collections, documents, errors, health, models, request_context
from src.api import embeddings as embeddings_api
from src.api.body_limit import BodyLimit
from src.backfill import run_backfill
from src.database.migrations import head_revision
from src.database.session import create_engine_from_settings
from src.embeddings.batching import Batchers, BatchLimits
from src.embeddings.registry import OK, EmbeddingModels, EncoderLoader
from src.metrics.http import HttpMetrics
from src.metrics.instruments import Metrics
from src.readiness import CachedReadiness
from src.settings import Settings
from src.warmup import Warmup

logger = logging.getLogger(__name__)

# Short: /readyz must answer quickly when the database is down (libpq's minimum is 2 s).
DB_CONNECT_TIMEOUT_S = 2


def create_app(
    settings: Settings,
    load_encoder: EncoderLoader | None = None,
    forward_passes: int = 1,
    pass_threads: int = 1,
    metrics: Metrics | None = None,
) -> FastAPI:
    """The app; `load_encoder` turns a snapshot folder (and its ONNX file, if the model runs on
    ONNX Runtime) into an encoder (tests share one; default embeddings.load);
    `forward_passes` run at once (src.blas_threads.forward_passes), each on `pass_threads`
    ONNX Runtime intra-op threads (src.blas_threads.threads_per_pass). Metrics are recorded
    with `metrics`, else into PROMETHEUS_MULTIPROC_DIR's files when settings.metrics_dir is
    set (src.metrics), else not at all."""
    loader = load_encoder or functools.partial(embeddings.load, threads=pass_threads)
    if metrics is None and settings.metrics_dir is not None:
        metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.metrics = metrics
        if metrics is not None:
            metrics.worker_started()
        app.state.migration_head = head_revision()
        app.state.engine = create_engine_from_settings(
            settings, connect_timeout=DB_CONNECT_TIMEOUT_S
        )
        # The encoders load from the local cache in a thread; /readyz says "loading" meanwhile.
        app.state.embedding_models = EmbeddingModels(settings.models, settings.onnx_files)
        # At most `forward_passes` at once, whichever route or model asks: one per CPU the
        # worker may use, each on one BLAS or ONNX Runtime thread (docs/api.md, "Embeddings
        # under load").
        limits = BatchLimits(
            max_wait_s=settings.embeddings_batch_wait_ms / 1000,
            max_batch_tokens=settings.embeddings_max_batch_tokens,
        )
        app.state.batchers = Batchers(limits, CapacityLimiter(forward_passes), metrics)
        app.state.warmup = Warmup(settings.warmup, bool(settings.models))
        # /readyz's checks on one connection of their own, never one of the requests' pool.
        readiness_engine = create_engine_from_settings(
            settings, connect_timeout=DB_CONNECT_TIMEOUT_S, pool_size=1, max_overflow=0
        )
        app.state.readiness = CachedReadiness(
            readiness_engine, settings, app.state.embedding_models, app.state.warmup
        )
        if settings.models:
            # Then, in the same thread, warm up (src.warmup), tell the other uvicorn workers this
            # one is ready to serve (src.worker_readiness) and embed the documents stored
            # without an embedding.
            def after_loading() -> None:
                loaded = app.state.embedding_models.status() == OK
                if not loaded:
                    app.state.warmup.not_loaded()
                elif not app.state.warmup.run(
                    app.state.engine, app.state.embedding_models, settings
                ):
                    return  # the app is stopping, or a model cannot infer: /readyz says which
                if settings.uvicorn_workers > 1 and loaded:
                    try:
                        worker_readiness.mark_loaded()
                    except OSError as error:  # /readyz then names the workers it waits for
                        logger.warning("startup: cannot note this worker loaded: %s", error)
                run_backfill(app.state.engine, app.state.embedding_models, settings)

            app.state.embedding_models.start_loading(settings.hf_home, loader, then=after_loading)
        logger.info(
            "startup: database %s, schema head %s, HF_HOME %s, models %s, ONNX files %s",
            settings.database_url_safe,
            app.state.migration_head,
            settings.hf_home,
            ", ".join(str(m) for m in settings.models) or "(none)",
            settings.onnx_files,
        )
        if settings.tracing is not None:
            logger.info(
                "startup: traces to %s as %s",
                settings.tracing.traces_url,
                settings.tracing.service_name,
            )
        try:
            yield
        finally:
            app.state.warmup.stop()
            await app.state.batchers.close()
            app.state.engine.dispose()
            readiness_engine.dispose()
            logger.info("shutdown: database connections closed")
            telemetry.shut_down(tracer_provider)

    # /docs (Swagger UI) loads its script, style and favicon from the fastapi-offline package's
    # files under /static-offline-docs, never from a CDN: hosts may be air-gapped (why that
    # package: see pyproject.toml). /redoc is off: ReDoc 2 always shows a logo from
    # cdn.redoc.ly and a link to redocly.com, and no page may point at the internet.
    app = FastAPIOffline(
        title="nica-pro backend", version="1.0.0", lifespan=lifespan, redoc_url=None
    )
    errors.install(app)  # OpenAI's error shape under /v1
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_body_bytes)
    routers = (health, models, collections, embeddings_api, documents)
    for module in routers:
        app.include_router(module.router)
    if metrics is not None:  # outermost: it sees the answers of BodyLimit and of errors too
        # Every route with its template, to name the requests answered before routing (413).
        routes = [route for module in routers for route in module.router.routes]
        app.add_middleware(HttpMetrics, metrics=metrics, routes=[*routes, *app.router.routes])
    tracer_provider = telemetry.instrument(app, settings.tracing)
    request_context.install(app)  # outermost: after telemetry.instrument
    return app
