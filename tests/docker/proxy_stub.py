"""A stand-in backend slot for the proxy's tests (standard library only; it runs in the
stand-in python image on the test's Docker network, named as a slot).

    POST /v1/embeddings  an answer in the OpenAI shape: one 384-value unit vector per input
    GET  /v1/search      three hits with scores, best first
    anything else        {"method", "path", "headers"}: what the proxy sent it

It reads each request body in full before answering, as uvicorn does.
"""

from __future__ import annotations

import json
import math
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DIMENSION = 384
UNIT = [1 / math.sqrt(DIMENSION)] * DIMENSION


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status: int, document: Any) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _echo(self) -> None:
        self._body()
        self._answer(
            200,
            {
                "method": self.command,
                "path": self.path,
                "headers": {key.lower(): value for key, value in self.headers.items()},
            },
        )

    def do_GET(self) -> None:
        if self.path.startswith("/v1/search"):
            hits = [
                {"id": n, "title": f"t{n}", "text": f"text {n}", "score": 0.9 - n / 10}
                for n in range(3)
            ]
            self._answer(200, {"object": "list", "data": hits, "model": "stub"})
        else:
            self._echo()

    def do_POST(self) -> None:
        if self.path == "/v1/embeddings":
            request = json.loads(self._body() or b"{}")
            inputs = request.get("input", "")
            count = 1 if isinstance(inputs, str) else len(inputs)
            data = [{"object": "embedding", "index": i, "embedding": UNIT} for i in range(count)]
            self._answer(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": request.get("model"),
                    "usage": {"prompt_tokens": count, "total_tokens": count},
                },
            )
        else:
            self._echo()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the proxy's log is the one under test


def main() -> int:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)  # noqa: S104 (a container's)
    server.daemon_threads = True
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
