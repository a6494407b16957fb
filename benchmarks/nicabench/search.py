"""GET /v1/search latency at growing collection sizes, and recall@10 against an exact search.

Filling 100,000 rows through the API would take hours on this machine, and search latency is
about the index, not the text: so rows go in with SQL (COPY into `documents` of a collection
of the benchmark's own, through the trigger and the HNSW index as any insert). Their vectors
are real: embeddings (by the deployed backend) of a few hundred real sentences, each row one of
them plus a little Gaussian noise, normalized, rounded to 5 decimals (what is stored is what
the exact search uses). The queries are other real sentences. Per step: `search_requests`
timed searches from one client (k=10, the collection), then for every query the served top 10
against the exact top 10 (all stored vectors, NumPy, by cosine): recall@10, and how often the
top result is the same.
"""

from __future__ import annotations

import http.client
import io
import json
import statistics
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import host
from .options import Options
from .stats import recall_at_k, summarize, top_agrees

COLLECTION = "benchmark-search"  # a constant: the only name formatted into SQL (S608)
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
K = 10
NOISE = (0.01, 0.04)  # per-row Gaussian noise scale per dimension, drawn uniformly
COPY_ROWS = 10_000  # rows per COPY
F32 = npt.NDArray[np.float32]


def embed(port: int, texts: Sequence[str]) -> F32:
    """Vectors of `texts` from the deployed backend (64 per request)."""
    rows: list[list[float]] = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for start in range(0, len(texts), 64):
            body = json.dumps({"model": MODEL, "input": list(texts[start : start + 64])})
            connection.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
            answer = connection.getresponse()
            payload = answer.read()
            if answer.status != 200:
                raise host.HostError(
                    f"POST /v1/embeddings answered {answer.status}: {payload[:200]!r}"
                )
            rows.extend(item["embedding"] for item in json.loads(payload)["data"])
    finally:
        connection.close()
    return np.asarray(rows, dtype=np.float32)


def make_rows(base: F32, count: int, start: int, seed: int) -> tuple[F32, list[int]]:
    """`count` vectors: base[i] + noise, normalized, rounded to 5 decimals; and which base row."""
    rng = np.random.default_rng(seed + start)
    which = [(start + i) % len(base) for i in range(count)]
    scale = rng.uniform(*NOISE, size=(count, 1)).astype(np.float32)
    vectors = base[which] + scale * rng.standard_normal((count, base.shape[1]), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.round(vectors, 5).astype(np.float32), which


def _copy_text(field: str) -> str:
    return field.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def copy_payload(collection_id: int, start: int, vectors: F32, bodies: Sequence[str]) -> bytes:
    """COPY text rows: collection, title bench-<n>, body, embedding {..}, model, dimension."""
    numbers = io.StringIO()
    np.savetxt(numbers, vectors, fmt="%.5f", delimiter=",")
    lines = numbers.getvalue().splitlines()
    out = io.StringIO()
    for offset, (vector, body) in enumerate(zip(lines, bodies, strict=True)):
        out.write(
            f"{collection_id}\tbench-{start + offset:07d}\t{_copy_text(body)}\t"
            f"{{{vector}}}\t{MODEL}\t{vectors.shape[1]}\n"
        )
    return out.getvalue().encode()


def _reset_collection(options: Options) -> int:
    host.psql(
        options.host,
        f"INSERT INTO collections (name, description) VALUES ('{COLLECTION}', "  # noqa: S608
        "'rows of benchmarks/run (search)') ON CONFLICT (name) DO NOTHING",
        "creating the benchmark collection",
    )
    collection_id = int(
        host.psql(
            options.host,
            f"SELECT id FROM collections WHERE name = '{COLLECTION}'",  # noqa: S608
            "reading the benchmark collection",
        ).strip()
    )
    stale = host.psql(
        options.host,
        f"DELETE FROM documents WHERE collection_id = {collection_id}",  # noqa: S608
        "removing an earlier run's rows",
    )
    del stale
    host.psql(options.host, "VACUUM ANALYZE documents", "VACUUM ANALYZE documents")
    return collection_id


def _search(connection: http.client.HTTPConnection, query: str) -> tuple[float, list[str]]:
    path = "/v1/search?" + urllib.parse.urlencode(
        {"q": query, "k": K, "collection": COLLECTION, "model": MODEL}
    )
    started = time.perf_counter()
    connection.request("GET", path)
    answer = connection.getresponse()
    payload = answer.read()
    elapsed = time.perf_counter() - started
    if answer.status != 200:
        raise host.HostError(f"GET /v1/search answered {answer.status}: {payload[:200]!r}")
    return elapsed, [hit["title"] for hit in json.loads(payload)["data"]]


def exact_titles(stored: F32, query: F32, k: int) -> list[str]:
    """The k stored rows nearest `query` by cosine, as titles (bench-<row>), best first."""
    norms = np.linalg.norm(stored.astype(np.float64), axis=1)
    scores = stored.astype(np.float64) @ query.astype(np.float64) / norms
    best = np.argsort(-scores, kind="stable")[:k]
    return [f"bench-{int(row):07d}" for row in best]


def measure(options: Options, documents: list[str], queries: list[str]) -> dict[str, Any]:
    host.say(f"search: embedding {len(documents)} sentences and {len(queries)} queries")
    base = embed(options.port, documents)
    query_vectors = embed(options.port, queries)
    collection_id = _reset_collection(options)
    stored = np.zeros((0, base.shape[1]), dtype=np.float32)
    results: dict[str, Any] = {}
    for target in options.docs:
        insert_s = 0.0
        while len(stored) < target:
            count = min(COPY_ROWS, target - len(stored))
            vectors, which = make_rows(base, count, len(stored), seed=10)
            payload = copy_payload(
                collection_id, len(stored), vectors, [documents[i] for i in which]
            )
            started = time.monotonic()
            host.psql(
                options.host,
                "COPY documents (collection_id, title, body, embedding, embedding_model, "
                "embedding_dim) FROM STDIN",
                f"COPY of {count} rows",
                stdin=payload,
            )
            insert_s += time.monotonic() - started
            stored = np.concatenate([stored, vectors])
        host.psql(options.host, "VACUUM ANALYZE documents", "VACUUM ANALYZE documents")
        host.say(f"search: {target:,} documents stored ({insert_s:.0f} s of COPY); searching")
        results[str(target)] = _step(options, stored, queries, query_vectors, insert_s)
    return results


def _step(
    options: Options, stored: F32, queries: list[str], query_vectors: F32, insert_s: float
) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", options.port, timeout=60)
    try:
        for query in queries[:20]:  # untimed: caches and the batcher warm
            _search(connection, query)
        latencies: list[float] = []
        served: dict[int, list[str]] = {}
        for index in range(options.search_requests):
            elapsed, titles = _search(connection, queries[index % len(queries)])
            latencies.append(elapsed)
            served.setdefault(index % len(queries), titles)
        for index, query in enumerate(queries):
            if index not in served:
                served[index] = _search(connection, query)[1]
    finally:
        connection.close()
    exact = {index: exact_titles(stored, query_vectors[index], K) for index in range(len(queries))}
    recalls = [recall_at_k(served[i], exact[i], K) for i in range(len(queries))]
    agree = [top_agrees(served[i], exact[i]) for i in range(len(queries))]
    figures = summarize(latencies, 0, sum(latencies)).as_dict()
    return {
        "p50_ms": figures["p50_ms"],
        "p95_ms": figures["p95_ms"],
        "requests": len(latencies),
        "queries": len(queries),
        "recall_at_10": round(statistics.mean(recalls), 4),
        "recall_at_10_min": round(min(recalls), 2),
        "top1_agreement": round(sum(agree) / len(agree), 4),
        "insert_s": round(insert_s, 1),
    }
