"""Request spans reach an OTLP/HTTP receiver, under the configured service name.

The receiver on the host (backend/tests/support/otlp_receiver.py, run by Debian's python3
without opentelemetry-proto) stores each export request's protobuf body; the spans are
decoded here with opentelemetry-proto (requirements-dev.txt) and read field by field.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from runs import http

SPANS = "/var/log/otlp/spans.jsonl"
SERVICE = "nica-pro-backend"  # backend_otel_service_name in inventory/local
ROUTE = "/v1/collections"  # a request the test makes itself, then waits for its span
EXPORT_WAIT_S = 30  # the SDK's batch processor exports every 5 s


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def decode(body: bytes) -> list[dict[str, Any]]:
    """One record per span of an ExportTraceServiceRequest: the service, the name, attributes."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attributes = {kv.key: _value(kv.value) for kv in span.attributes}
                spans.append(
                    {
                        "service": resource.get("service.name"),
                        "name": span.name,
                        "route": attributes.get("http.route"),
                    }
                )
    return spans


def received_spans(host: Any, skip: int = 0) -> list[dict[str, Any]]:
    """Every span the receiver got, decoded from the bodies it stored (after the first `skip`)."""
    spans = []
    for line in host.file(SPANS).content_string.splitlines()[skip:]:
        if line.strip():
            record = json.loads(line)
            assert "body_base64" in record, f"the receiver stored no protobuf body: {record}"
            spans.extend(decode(base64.b64decode(record["body_base64"])))
    return spans


@pytest.fixture(scope="module")
def spans(host: Any) -> list[dict[str, Any]]:
    """Every span the receiver got since the host was prepared."""
    return received_spans(host)


@pytest.fixture(scope="module")
def new_spans(host: Any) -> list[dict[str, Any]]:
    """The spans exported after a fresh GET /v1/collections, once its span has arrived."""
    before = len(host.file(SPANS).content_string.splitlines())
    status, body = http(host, f"http://127.0.0.1:8000{ROUTE}")
    assert status == 200, f"GET {ROUTE} answered {status}: {body}"
    deadline = time.monotonic() + EXPORT_WAIT_S
    while True:
        found = received_spans(host, skip=before)
        if any(span["route"] == ROUTE for span in found) or time.monotonic() > deadline:
            return found
        time.sleep(2)


def test_the_backend_is_configured_to_export_traces(sh, serving):
    env = sh(f"docker exec {serving} printenv OTEL_SERVICE_NAME OTEL_EXPORTER_OTLP_ENDPOINT")
    name, endpoint = env.split()
    assert name == SERVICE, f"OTEL_SERVICE_NAME is {name!r}, expected {SERVICE!r}"
    assert endpoint.endswith(":4318"), f"unexpected OTLP endpoint {endpoint}"


def test_the_receiver_got_spans(spans):
    assert spans, "the receiver got no span from the backend"


def test_every_span_names_the_service(spans):
    services = {span["service"] for span in spans}
    assert services == {SERVICE}, f"spans carry service.name {services}, expected only {SERVICE!r}"


def test_a_request_is_a_span_named_after_its_route(new_spans):
    expected = {"service": SERVICE, "name": f"GET {ROUTE}", "route": ROUTE}
    assert expected in new_spans, (
        f"expected a span {expected} within {EXPORT_WAIT_S} s of the request; "
        f"received {len(new_spans)} spans since, {new_spans[-3:]}"
    )
