"""The metrics process: every uvicorn worker's metrics in one scrape, on a port of its own.

    python -m src.metrics.server [--host 0.0.0.0] [--port 9464] [--backend-url URL]
                                 [--documents-every SECONDS]

The image's entrypoint starts it next to uvicorn (METRICS_ENABLED=0: not), after it emptied
PROMETHEUS_MULTIPROC_DIR. It serves, until it is stopped:

    GET /metrics   Prometheus text format (OpenMetrics when the scraper asks for it): the
                   workers' files summed (prometheus_client's MultiProcessCollector), each live
                   worker's memory and CPU, the documents per collection, the release and
                   slot, and readiness (src.metrics.collectors)
    GET /summary   JSON: the last five minutes (src.metrics.summary), for playbooks/status.yml

Environment: PROMETHEUS_MULTIPROC_DIR (required), the backend's DATABASE_* (the document
counts), NICA_RELEASE and NICA_SLOT (labels of nica_release_info; "unknown" when unset).
Bad configuration: one `error: ...` line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from src.metrics.collectors import Documents, Release, Workers
from src.metrics.summary import History, Snapshot, snapshot
from src.settings import ConfigError, Settings

DEFAULT_PORT = 9464
DEFAULT_BACKEND_URL = "http://127.0.0.1:8000"
DOCUMENTS_EVERY_S = 60.0
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # as src.main's
logger = logging.getLogger("src.metrics.server")


class Exporter:
    """The registry /metrics serves and the history /summary reads, over one folder."""

    def __init__(
        self, settings: Settings, path: Path, release: Release, documents_ttl_s: float
    ) -> None:
        self.workers = Workers(path)
        self.release = release
        self.documents = Documents(settings, ttl_s=documents_ttl_s)
        # The workers' files only: the snapshots need nothing else (and no database).
        self.files = CollectorRegistry(auto_describe=False)
        self.files.register(_multiprocess(path))
        self.registry = CollectorRegistry(auto_describe=False)
        for collector in (self.workers, self.documents, self.release):
            self.registry.register(collector)
        self.registry.register(_multiprocess(path))
        self.history = History(self.take_snapshot)

    def take_snapshot(self) -> Snapshot:
        self.workers.sweep()
        return snapshot(self.files.collect(), time.monotonic())

    def scrape(self, accept: str) -> tuple[bytes, str]:
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type

    def summary(self) -> dict[str, Any]:
        figures = self.history.summary()
        figures.update(
            release=self.release.release, slot=self.release.slot, ready=self.release.ready()
        )
        return figures


def _multiprocess(path: Path) -> Collector:
    """prometheus_client's collector of the workers' files (not typed there)."""
    make: Callable[[None, str], Collector] = MultiProcessCollector
    return make(None, str(path))


def handler(exporter: Exporter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "nica-metrics"
        sys_version = ""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, content_type = exporter.scrape(self.headers.get("Accept", ""))
                self._answer(200, body, content_type)
            elif path == "/summary":
                body = json.dumps(exporter.summary()).encode()
                self._answer(200, body, "application/json")
            else:
                self._answer(404, b"not found: GET /metrics or /summary\n", "text/plain")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: a scrape every few seconds is not worth a log line."""

    return Handler


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.metrics.server", description=__doc__)
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")  # noqa: S104
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"({DEFAULT_PORT})")
    p.add_argument(
        "--backend-url",
        default=DEFAULT_BACKEND_URL,
        help=f"the backend's base URL, for its /readyz ({DEFAULT_BACKEND_URL})",
    )
    p.add_argument(
        "--documents-every",
        type=float,
        default=DOCUMENTS_EVERY_S,
        help=f"seconds between two database reads of the document counts ({DOCUMENTS_EVERY_S:g})",
    )
    return p.parse_args(list(argv))


def build(args: argparse.Namespace, env: dict[str, str]) -> tuple[ThreadingHTTPServer, Exporter]:
    """The server, bound, and its exporter; ConfigError for bad configuration."""
    settings = Settings.from_env(env)
    if settings.metrics_dir is None:
        raise ConfigError("PROMETHEUS_MULTIPROC_DIR is not set: the workers write no metrics")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port (METRICS_PORT) must be within 1..65535, got {args.port}")
    release = Release(
        env.get("NICA_RELEASE", "").strip(),
        env.get("NICA_SLOT", "").strip(),
        args.backend_url.rstrip("/") + "/readyz",
    )
    if args.documents_every < 1:
        raise ConfigError(f"--documents-every must be 1 second or more, got {args.documents_every}")
    exporter = Exporter(settings, settings.metrics_dir, release, args.documents_every)
    try:
        server = ThreadingHTTPServer((args.host, args.port), handler(exporter))
    except OSError as error:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    server.daemon_threads = True
    return server, exporter


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        server, exporter = build(args, dict(os.environ))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    exporter.history.start()
    logger.info("metrics: serving /metrics and /summary on %s:%d", args.host, args.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        exporter.history.stop()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
