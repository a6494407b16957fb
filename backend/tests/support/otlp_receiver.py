"""A tiny OTLP/HTTP trace receiver: accepts POST /v1/traces, records what arrives.

For the tests (`OtlpReceiver`, a context manager) and, standalone, to check on a test host
that the deployed container exports its traces:

    python3 otlp_receiver.py --bind 0.0.0.0 --port 4318 --out /tmp/spans.jsonl \\
        [--service nica-pro-backend]

then point the container at it (OTEL_EXPORTER_OTLP_ENDPOINT=http://<host>:4318). It prints
"listening on http://HOST:PORT" and appends one JSON line per span to FILE:

    {"service": "nica-pro-backend", "span": "GET /healthz", "http_route": "/healthz",
     "http_status": 200}

(http_route / http_status only when the span carries them). Bodies may be gzip-compressed.
Stop it with Ctrl-C (exit 0). Exit 2: the port cannot be bound.

Needs only the Python standard library (3.11+; Debian 13's python3 is fine). The spans are
decoded with opentelemetry-proto (ExportTraceServiceRequest) when it can be imported. When it
cannot, each request is stored undecoded instead, one JSON line per request:

    {"decoded": false, "bytes": 1234, "body_base64": "...", "service_found": true}

where "service_found" (only with --service NAME) is a crude check that NAME's UTF-8 bytes
appear in the protobuf body (the resource attribute service.name is stored as plain bytes).
Protobuf JSON bodies (Content-Type application/json) are not supported; the exporter
configured by the app sends protobuf.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

TRACES_PATH = "/v1/traces"
ROUTE_KEYS = ("http.route",)
STATUS_KEYS = ("http.response.status_code", "http.status_code")

Record = dict[str, Any]


def proto_available() -> bool:
    try:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: F401
    except ImportError:
        return False
    return True


def decode_spans(body: bytes) -> list[Record]:
    """One record per span of an ExportTraceServiceRequest (needs opentelemetry-proto)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    records: list[Record] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attributes = _attributes(span.attributes)
                record: Record = {"service": resource.get("service.name"), "span": span.name}
                route = _first(attributes, ROUTE_KEYS)
                status = _first(attributes, STATUS_KEYS)
                if route is not None:
                    record["http_route"] = route
                if status is not None:
                    record["http_status"] = status
                records.append(record)
    return records


def undecoded(body: bytes, service: str | None) -> Record:
    """The stdlib-only record of one request body."""
    record: Record = {
        "decoded": False,
        "bytes": len(body),
        "body_base64": base64.b64encode(body).decode("ascii"),
    }
    if service is not None:
        record["service_found"] = service.encode("utf-8") in body
    return record


def _attributes(key_values: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key_value in key_values:
        kind = key_value.value.WhichOneof("value")
        values[key_value.key] = getattr(key_value.value, kind) if kind else None
    return values


def _first(attributes: dict[str, Any], keys: Sequence[str]) -> Any:
    return next((attributes[key] for key in keys if key in attributes), None)


class OtlpReceiver:
    """An OTLP/HTTP receiver on a background thread; `bodies` holds the raw protobuf bodies.

    `on_body` (if given) is called with each body, in the server's request thread.
    """

    def __init__(
        self,
        bind: str = "127.0.0.1",
        port: int = 0,
        on_body: Callable[[bytes], None] | None = None,
    ) -> None:
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
        self._on_body = on_body
        self._server = ThreadingHTTPServer((bind, port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def spans(self) -> list[Record]:
        with self._lock:
            bodies = list(self.bodies)
        return [record for body in bodies for record in decode_spans(body)]

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def _record(self, body: bytes) -> None:
        with self._lock:
            self.bodies.append(body)
        if self._on_body is not None:
            self._on_body(body)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path.split("?")[0] != TRACES_PATH:
                    self._answer(404)
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    body = gzip.decompress(body)
                receiver._record(body)
                # An empty ExportTraceServiceResponse is an empty protobuf message.
                self._answer(200)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the output file is the record

        return Handler


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Receive OTLP/HTTP traces on POST /v1/traces; one JSON line per span."
    )
    parser.add_argument("--bind", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4318, help="port (default 4318; 0: any)")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines file to append to")
    parser.add_argument(
        "--service", help="without opentelemetry-proto: check these bytes appear in each body"
    )
    return parser


def _lines(body: bytes, decode: bool, service: str | None) -> Iterator[str]:
    records = decode_spans(body) if decode else [undecoded(body, service)]
    for record in records:
        yield json.dumps(record, sort_keys=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    decode = proto_available()
    write_lock = threading.Lock()

    def append(body: bytes) -> None:
        try:
            lines = list(_lines(body, decode, args.service))
        except Exception as error:  # a body that is not a trace request: say so, keep serving
            print(f"warning: undecodable body ({len(body)} bytes): {error}", file=sys.stderr)
            lines = list(_lines(body, False, args.service))
        with write_lock, args.out.open("a", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)

    try:
        receiver = OtlpReceiver(args.bind, args.port, on_body=append)
    except OSError as error:
        print(f"error: cannot listen on {args.bind}:{args.port}: {error.strerror}", file=sys.stderr)
        return 2
    mode = "decoding with opentelemetry-proto" if decode else "stdlib only: storing raw bodies"
    print(f"listening on {receiver.url} ({mode}), appending to {args.out}", flush=True)
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
