"""Request spans reach an OTLP/HTTP receiver, under the configured service name."""

import json

SPANS = "/var/log/otlp/spans.jsonl"


def test_the_backend_is_configured_to_export_traces(sh, serving):
    env = sh(f"docker exec {serving} printenv OTEL_SERVICE_NAME OTEL_EXPORTER_OTLP_ENDPOINT")
    name, endpoint = env.split()
    assert name == "nica-pro-backend"
    assert endpoint.endswith(":4318"), f"unexpected OTLP endpoint {endpoint}"


def test_spans_with_the_service_name_arrived(host, http_get):
    http_get("http://127.0.0.1:8000/readyz")  # at least one more request to trace
    records = [
        json.loads(line) for line in host.file(SPANS).content_string.splitlines() if line.strip()
    ]
    assert records, "the receiver got no trace export from the backend"
    # Decoded spans name the service; undecoded bodies (stdlib-only receiver) were
    # checked for the service name's bytes.
    assert any(
        r.get("service") == "nica-pro-backend" or r.get("service_found") is True for r in records
    ), f"no export carried the service name nica-pro-backend: {records[:2]}"
