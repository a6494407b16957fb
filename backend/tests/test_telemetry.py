"""Request traces over OTLP/HTTP, received by tests/support/otlp_receiver.py."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from src.app import create_app
from src.settings import Settings
from tests.conftest import Database
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.runners import BACKEND_DIR, base_env

SERVICE = "nica-test-backend"
RECEIVER_SCRIPT = BACKEND_DIR / "tests" / "support" / "otlp_receiver.py"
DEFAULT_OTLP_PORT = 4318  # where an exporter sends when no endpoint is configured


def app_settings(database: Database, hf_home: Path, **otel: str) -> Settings:
    return Settings.from_env(
        {
            "DATABASE_URL": database.url,
            "DATABASE_PASSWORD_FILE": str(database.password_file),
            "HF_HOME": str(hf_home),
            **otel,
        }
    )


def traced_settings(database: Database, hf_home: Path, endpoint: str) -> Settings:
    return app_settings(
        database, hf_home, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_SERVICE_NAME=SERVICE
    )


def serve(settings: Settings, *paths: str) -> None:
    """Start the app, GET each path, shut the app down (which flushes the spans)."""
    with TestClient(create_app(settings)) as client:
        for path in paths:
            assert client.get(path).status_code == 200, f"GET {path} should answer 200"


# ---- in-process receiver


def test_request_spans_arrive_with_the_service_name(
    seeded_database: Database, tmp_path: Path
) -> None:
    with OtlpReceiver() as receiver:
        serve(traced_settings(seeded_database, tmp_path, receiver.url), "/v1/collections")
        spans = receiver.spans()
    expected = {
        "service": SERVICE,
        "span": "GET /v1/collections",
        "http_route": "/v1/collections",
        "http_status": 200,
    }
    assert expected in spans, f"expected a span {expected}, received {spans}"


def test_shutdown_flushes_the_spans_of_the_last_requests(
    seeded_database: Database, tmp_path: Path
) -> None:
    with OtlpReceiver() as receiver:
        serve(traced_settings(seeded_database, tmp_path, receiver.url), "/healthz", "/healthz")
        routes = [span.get("http_route") for span in receiver.spans()]
    assert routes.count("/healthz") == 2, f"both requests' spans should be sent, got {routes}"


def test_without_an_endpoint_nothing_is_exported_and_nothing_warns(
    seeded_database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for variable in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)
    try:
        receiver = OtlpReceiver(port=DEFAULT_OTLP_PORT)  # an exporter's default destination
    except OSError:
        pytest.skip(f"port {DEFAULT_OTLP_PORT} is in use here")
    with receiver, caplog.at_level(logging.WARNING):
        serve(app_settings(seeded_database, tmp_path), "/healthz")
    assert receiver.bodies == [], "nothing should be exported without an endpoint"
    assert caplog.records == [], f"no warnings expected, got {caplog.messages}"


# ---- what a span says: the request id, never the query string


SEARCH_TEXT = "okapi-lullaby-93d2"  # user data: belongs in no trace


def span_attributes(bodies: list[bytes]) -> list[dict[str, Any]]:
    """Every span's attributes, from the protobuf bodies the receiver got."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    found = []
    for body in bodies:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        {
                            kv.key: getattr(kv.value, kv.value.WhichOneof("value"))
                            for kv in span.attributes
                        }
                    )
    return found


def traced_request(database: Database, hf_home: Path, path: str, request_id: str) -> list[bytes]:
    with OtlpReceiver() as receiver:
        settings = traced_settings(database, hf_home, receiver.url)
        with TestClient(create_app(settings)) as client:
            response = client.get(path, headers={"X-Request-ID": request_id})
            assert response.status_code == 200, response.text
        return list(receiver.bodies)


def test_a_span_carries_the_request_id(seeded_database: Database, tmp_path: Path) -> None:
    bodies = traced_request(seeded_database, tmp_path, "/v1/collections", "traced-42")
    ids = [a.get("nica.request_id") for a in span_attributes(bodies)]
    assert ids == ["traced-42"], f"expected one span with the request's id, got {ids}"


def test_no_span_carries_the_query_string(seeded_database: Database, tmp_path: Path) -> None:
    bodies = traced_request(
        seeded_database, tmp_path, f"/v1/collections?q={SEARCH_TEXT}&k=3", "traced-43"
    )
    [attributes] = span_attributes(bodies)
    assert str(attributes.get("http.url", "")).endswith("/v1/collections"), attributes
    assert not any(SEARCH_TEXT.encode() in body for body in bodies), (
        f"the query string reached the trace: {attributes}"
    )


# ---- the command-line receiver (what the lead runs on a test host)


@contextmanager
def receiver_process(out: Path, *python_flags: str) -> Iterator[str]:
    """The CLI on a free port; yields its URL. `-S`: without site-packages (stdlib only)."""
    command = [sys.executable, *python_flags, str(RECEIVER_SCRIPT)]
    command += ["--port", "0", "--out", str(out), "--service", SERVICE]
    process = subprocess.Popen(command, env=base_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("listening on http://"), f"unexpected banner: {banner!r}"
        yield banner.split()[2]
    finally:
        process.terminate()
        process.wait(timeout=10)


def records(out: Path, timeout: float = 10) -> list[dict[str, Any]]:
    """The JSON lines of `out`, once there are some."""
    deadline = time.monotonic() + timeout
    while not (out.exists() and out.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.exists(), f"the receiver wrote nothing to {out} in {timeout} s"
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_cli_appends_one_json_line_per_span(seeded_database: Database, tmp_path: Path) -> None:
    out = tmp_path / "spans.jsonl"
    with receiver_process(out) as url:
        serve(traced_settings(seeded_database, tmp_path, url), "/healthz")
        lines = records(out)
    expected = {"service": SERVICE, "span": "GET /healthz", "http_route": "/healthz"}
    assert [{**expected, "http_status": 200}] == lines, f"lines written: {lines}"


def test_cli_with_only_the_stdlib_stores_raw_bodies_and_finds_the_service(
    seeded_database: Database, tmp_path: Path
) -> None:
    out = tmp_path / "raw.jsonl"
    with receiver_process(out, "-S") as url:
        serve(traced_settings(seeded_database, tmp_path, url), "/healthz")
        lines = records(out)
    summary = [(line["decoded"], line["service_found"], line["bytes"] > 0) for line in lines]
    assert summary == [(False, True, True)], f"lines written: {lines}"
