"""What the warm-up before ready saves: the first requests a new release serves, with and
without it, on a PostgreSQL of your own, no demo host needed.

    benchmarks/pg17_chroot.sh start        # PostgreSQL 17 + pgvector as the stack's
    python -m benchmarks.nicabench.warmup_bench --dsn postgresql://postgres@127.0.0.1:55417/postgres
    benchmarks/pg17_chroot.sh stop

It makes (drops first) the database `nica_warmup_bench`, migrates and seeds it with the
backend's own CLI, and stores --documents documents through POST /v1/documents (once,
untimed). Then, --runs times each, alternating: the backend of this checkout starts under
uvicorn on 127.0.0.1 (local_backend.py: two workers, the real model, metrics on), with
WARMUP_BEFORE_READY=1 or =0; as soon as /readyz answers 200, --clients clients send the first
--requests requests at once, alternating POST /v1/embeddings (one sentence) and GET /v1/search
(k=5), as the traffic a cut-over moves to a new slot. The figures: p50/p95/max of those first
requests per run, and pooled per mode. A table on stdout, JSON in build/reports/warmup.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from . import backend, corpus, host, local_backend
from .load import Request, run_block
from .options import REPO, bounded_int
from .stats import Block, percentile, pool

DATABASE = "nica_warmup_bench"
DEFAULT_JSON = REPO / "build" / "reports" / "warmup.json"
MODES = {"warm-up": "1", "no warm-up": "0"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.nicabench.warmup_bench")
    p.add_argument("--dsn", required=True, help="postgresql://superuser@host:port/db")
    p.add_argument("--runs", type=bounded_int(1, 20), default=5, help="starts per mode (5)")
    p.add_argument("--requests", type=bounded_int(20, 2000), default=200, help="(200)")
    p.add_argument("--clients", type=bounded_int(1, 64), default=8, help="(8)")
    p.add_argument("--documents", type=bounded_int(10, 5000), default=500, help="(500)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"({DEFAULT_JSON})")
    return p


def fresh_database(dsn: str) -> str:
    """The benchmark's database, dropped, created, migrated and seeded; its DATABASE_URL."""
    url = make_url(dsn).set(drivername="postgresql+psycopg")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {DATABASE}"))
    admin.dispose()
    database_url = url.set(database=DATABASE).render_as_string(hide_password=False)
    host.run(
        [sys.executable, "-m", "src.database.cli", "migrate-seed"],
        "migrate-seed",
        env={
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": database_url,
            "PYTHONPATH": str(backend.BACKEND),
        },
    )
    return database_url


def store_documents(port: int, sentences: Sequence[str]) -> None:
    """POST /v1/documents, one by one (201 each)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for sentence in sentences:
            body = json.dumps({"collection": "default", "text": sentence}).encode()
            headers = {"Content-Type": "application/json"}
            connection.request("POST", "/v1/documents", body=body, headers=headers)
            answer = connection.getresponse()
            payload = answer.read()
            if answer.status not in (201, 409):  # 409: a sentence with the same first line
                raise host.HostError(f"storing a document: HTTP {answer.status}: {payload[:200]!r}")
    finally:
        connection.close()


def first_requests(sentences: Sequence[str]) -> Callable[[int], Request]:
    """Alternately one sentence to embed and one to search for."""

    def make(index: int) -> Request:
        sentence = sentences[index % len(sentences)]
        if index % 2 == 0:
            body = {"model": local_backend.MODEL, "input": [sentence]}
            return "POST", "/v1/embeddings", json.dumps(body).encode()
        return "GET", "/v1/search?" + urllib.parse.urlencode({"q": sentence, "k": 5}), None

    return make


def one_start(
    home: Path, database_url: str, warmup: str, options: argparse.Namespace, queries: list[str]
) -> tuple[Block, float]:
    """Start the backend, wait for /readyz 200, send the first requests; (them, seconds to
    ready)."""
    environ = {"DATABASE_URL": database_url, "WARMUP_BEFORE_READY": warmup}
    log = REPO / "build" / "reports" / f"warmup-bench-{warmup}.log"
    started = time.monotonic()
    with local_backend.serving(
        home, log, metrics=True, environ=environ, wait_until="ready"
    ) as served:
        ready_s = time.monotonic() - started
        block = run_block(
            served.port, options.clients, first_requests(queries), options.requests, 120
        )
    return block, ready_s


def figures(block: Block) -> dict[str, Any]:
    latencies = block.latencies_s
    return {
        "requests": len(latencies),
        "failed": block.failed,
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
    }


def run(options: argparse.Namespace) -> dict[str, Any]:
    sentences = corpus.stdlib_sentences(options.documents + 400)
    documents, queries = sentences[: options.documents], sentences[options.documents :]
    database_url = fresh_database(options.dsn)
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    blocks: dict[str, list[Block]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="nica-bench-hf-") as folder:
        home = local_backend.hf_home(Path(folder))
        host.say(f"warm-up: storing {len(documents)} documents (untimed)")
        with local_backend.serving(
            home,
            REPO / "build" / "reports" / "warmup-bench-setup.log",
            metrics=False,
            environ={"DATABASE_URL": database_url},
            wait_until="ready",
        ) as served:
            store_documents(served.port, documents)
        for index in range(options.runs):
            for mode, switch in MODES.items():
                host.say(f"warm-up: run {index + 1} of {options.runs}, {mode}")
                block, ready_s = one_start(home, database_url, switch, options, queries)
                if block.failed:
                    host.say(f"warm-up: {mode}: {block.failed} failed: {block.first_error}")
                blocks[mode].append(block)
                runs[mode].append({**figures(block), "start_to_ready_s": round(ready_s, 2)})
    summary = {}
    for mode in MODES:
        pooled = pool(blocks[mode]).as_dict()
        summary[mode] = {
            "median_of_p95_ms": round(statistics.median(r["p95_ms"] for r in runs[mode]), 1),
            "pooled_p50_ms": pooled["p50_ms"],
            "pooled_p95_ms": pooled["p95_ms"],
            "median_start_to_ready_s": round(
                statistics.median(r["start_to_ready_s"] for r in runs[mode]), 2
            ),
        }
    return {
        "summary": summary,
        "runs": runs,
        "requests": options.requests,
        "clients": options.clients,
        "documents": options.documents,
        "backend": "this checkout under uvicorn on 127.0.0.1, 2 workers, the real model",
        "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        f"First {results['requests']} requests after /readyz said ready, {results['clients']} "
        "clients (embeddings and search alternately):",
        "| mode | p95 of each run (ms) | median p95 | pooled p50 / p95 | start to ready |",
        "|---|---|---|---|---|",
    ]
    for mode, summary in results["summary"].items():
        each = ", ".join(f"{run['p95_ms']:.0f}" for run in results["runs"][mode])
        lines.append(
            f"| {mode} | {each} | {summary['median_of_p95_ms']:.1f} ms | "
            f"{summary['pooled_p50_ms']:.1f} / {summary['pooled_p95_ms']:.1f} ms | "
            f"{summary['median_start_to_ready_s']:.1f} s |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    options = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        results = run(options)
    except (host.HostError, subprocess.SubprocessError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    options.json.parent.mkdir(parents=True, exist_ok=True)
    options.json.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\n(JSON: {options.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
