"""Request traces over OTLP/HTTP (protobuf), when Settings.tracing says where to send them.

One server span per HTTP request (opentelemetry-instrumentation-fastapi), batched by a
BatchSpanProcessor and flushed when the app shuts down. The tracer provider is the app's own,
never the process-global one, so several apps (tests) can coexist. Without tracing settings
nothing is instrumented: no exporter, no background thread, no warnings.

Each span carries the request's id (src.api.request_context) as `nica.request_id`, and no
query string: the instrumentation would record GET /v1/search?q=<the user's text> in
`http.url` (and `url.query`), and a search text is user data that belongs in no log or trace.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span

from src.api.request_context import request_id
from src.settings import Tracing

REQUEST_ID_ATTRIBUTE = "nica.request_id"
# Attributes that may carry the query string, and what is kept of each.
URL_ATTRIBUTES = ("http.url", "url.full", "http.target")
QUERY_ATTRIBUTE = "url.query"
EXPORT_TIMEOUT_S = 5.0
SHUTDOWN_FLUSH_TIMEOUT_MS = 5000


def instrument(app: FastAPI, tracing: Tracing | None) -> TracerProvider | None:
    """Trace the app's requests to tracing.traces_url; returns the provider to shut down."""
    if tracing is None:
        return None
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: tracing.service_name, SERVICE_VERSION: app.version})
    )
    exporter = OTLPSpanExporter(endpoint=tracing.traces_url, timeout=EXPORT_TIMEOUT_S)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    # Only the server span of each request, not one per ASGI receive/send message.
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        exclude_spans=["receive", "send"],
        server_request_hook=on_server_span,
    )
    return provider


def on_server_span(span: Span, scope: MutableMapping[str, Any]) -> None:
    """At the start of a request's span: its id, and its URL without the query string."""
    if not span.is_recording():
        return
    span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id(scope))
    recorded = getattr(span, "attributes", None) or {}
    for name in URL_ATTRIBUTES:
        value = recorded.get(name)
        if isinstance(value, str) and "?" in value:
            span.set_attribute(name, value.split("?", 1)[0])
    if recorded.get(QUERY_ATTRIBUTE):
        span.set_attribute(QUERY_ATTRIBUTE, "")


def shut_down(provider: TracerProvider | None) -> None:
    """Export the spans still queued, then stop the exporter's thread."""
    if provider is None:
        return
    provider.force_flush(timeout_millis=SHUTDOWN_FLUSH_TIMEOUT_MS)
    provider.shutdown()
