"""Request traces over OTLP/HTTP (protobuf), when Settings.tracing says where to send them.

One server span per HTTP request (opentelemetry-instrumentation-fastapi), batched by a
BatchSpanProcessor and flushed when the app shuts down. The tracer provider is the app's own,
never the process-global one, so several apps (tests) can coexist. Without tracing settings
nothing is instrumented: no exporter, no background thread, no warnings.
"""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from src.settings import Tracing

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
        app, tracer_provider=provider, exclude_spans=["receive", "send"]
    )
    return provider


def shut_down(provider: TracerProvider | None) -> None:
    """Export the spans still queued, then stop the exporter's thread."""
    if provider is None:
        return
    provider.force_flush(timeout_millis=SHUTDOWN_FLUSH_TIMEOUT_MS)
    provider.shutdown()
