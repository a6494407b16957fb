"""GET /v1/search at growing collection sizes: end to end, the search statement alone, and the
served rankings against an exact search (recall@10, top-1 agreement).

The data (benchmarks/nicabench/search_data.py): the largest --docs count of DISTINCT synthetic
sentences, each row's vector the real model's embedding of its text (the backend's NumPy
encoder on this machine, cached under build/bench/search-data/); a smaller step stores the
first rows of the same set. Queries are other sentences (half paraphrase-like, half unrelated
questions), embedded by the deployed backend. Filling 100,000 rows through the API would take
hours here and search latency is about the index, not the text: rows go in with SQL (COPY into
`documents`, in a collection of the benchmark's own, through the trigger and the HNSW index as
any insert), each vector written with 9 significant digits, so the stored float32 values are
exactly the ones the exact search reads.

Per step: `search_requests` timed GET /v1/search (k=10, the collection) from one client;
then every query's search statement in the postgres container, as the backend runs it (its
settings statement with the backend's default ef_search, then its statement, from
backend/src/database/documents.py), under EXPLAIN (ANALYZE, TIMING OFF): the server's execution
time, without the query's embedding, HTTP and proxies; then for every query the served top 10
against the exact top 10 (NumPy over every stored vector, by cosine).
"""

from __future__ import annotations

import http.client
import io
import json
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import backend, host, search_data, search_eval
from .options import Options
from .search_data import F32
from .stats import summarize

COLLECTION = "benchmark-search"  # a constant: the only name formatted into SQL (S608)
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
K = search_eval.K
COPY_ROWS = 10_000  # rows per COPY
TITLE = "bench-{:07d}"  # row i of the test set


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


def _copy_text(field: str) -> str:
    return field.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def copy_payload(collection_id: int, start: int, vectors: F32, bodies: Sequence[str]) -> bytes:
    """COPY text rows: collection, title bench-<row>, body, embedding {..} (float32 exactly:
    9 significant digits), model, dimension."""
    numbers = io.StringIO()
    np.savetxt(numbers, vectors, fmt="%.9g", delimiter=",")
    lines = numbers.getvalue().splitlines()
    out = io.StringIO()
    for offset, (vector, body) in enumerate(zip(lines, bodies, strict=True)):
        out.write(
            f"{collection_id}\t{TITLE.format(start + offset)}\t{_copy_text(body)}\t"
            f"{{{vector}}}\t{MODEL}\t{vectors.shape[1]}\n"
        )
    return out.getvalue().encode()


def rows_of(titles: Sequence[str]) -> list[int]:
    """Test-set rows of served titles (bench-<row>); -1 for a title not of the benchmark."""
    prefix = TITLE.split("{")[0]
    return [int(t[len(prefix) :]) if t.startswith(prefix) else -1 for t in titles]


def statement_script(
    settings_sql: str,
    search_sql: str,
    queries: F32,
    parameters: Mapping[str, object],
    ef_search: int,
) -> str:
    """psql input: per query, in its own transaction, the backend's settings statement and its
    search statement under EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON), values as literals."""
    settings = search_eval.literal_sql(settings_sql, {"ef": str(ef_search)})
    parts = []
    for query in queries:
        values = {**parameters, "query": [float(value) for value in query]}
        statement = search_eval.literal_sql(search_sql, values)
        parts.append(
            f"BEGIN;\n{settings};\nEXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {statement};\n"
            "COMMIT;\n"
        )
    return "".join(parts)


def step_figures(
    latencies_s: Sequence[float],
    statements: Sequence[tuple[float, bool]],
    served: Sequence[Sequence[int]],
    exact: search_eval.Exact,
    insert_s: float,
) -> dict[str, Any]:
    """One step's figures: end-to-end p50/p95, the statement's (and how many of its plans
    used the HNSW index), and the agreement."""
    end_to_end = summarize(latencies_s, 0, sum(latencies_s)).as_dict()
    statement = search_eval.latency_ms([time_ms for time_ms, _ in statements])
    return {
        "p50_ms": end_to_end["p50_ms"],
        "p95_ms": end_to_end["p95_ms"],
        "requests": len(latencies_s),
        "statement_p50_ms": statement["p50_ms"],
        "statement_p95_ms": statement["p95_ms"],
        "statements": len(statements),
        "statements_using_the_index": sum(used for _, used in statements),
        "queries": len(served),
        **search_eval.agreement(served, exact),
        **search_eval.top1_by_kind(served, exact, search_data.paraphrases(len(served))),
        "insert_s": round(insert_s, 1),
    }


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
    host.psql(
        options.host,
        f"DELETE FROM documents WHERE collection_id = {collection_id}",  # noqa: S608
        "removing an earlier run's rows",
    )
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


def load_test_set(options: Options) -> search_data.TestSet:
    recipe = search_data.Recipe(
        max(options.docs), search_data.SEED, search_data.weights_digest(search_data.MODEL_DIR)
    )
    host.say(f"search: the test set of {recipe.documents:,} documents (cached: {recipe.key()})")
    return search_data.load_or_make(
        recipe,
        options.queries,
        search_data.CACHE_DIR,
        search_data.backend_encoder(search_data.MODEL_DIR),
    )


def measure(options: Options) -> dict[str, Any]:
    data = load_test_set(options)
    host.say(f"search: embedding {len(data.queries)} queries on the host")
    query_vectors = embed(options.port, data.queries)
    collection_id = _reset_collection(options)
    stored = 0
    results: dict[str, Any] = {}
    ef_search = int(backend.module("settings").DEFAULT_SEARCH_EF_SEARCH)
    for target in options.docs:
        insert_s = 0.0
        while stored < target:
            count = min(COPY_ROWS, target - stored)
            payload = copy_payload(
                collection_id,
                stored,
                data.document_vectors[stored : stored + count],
                data.documents[stored : stored + count],
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
            stored += count
        host.psql(options.host, "VACUUM ANALYZE documents", "VACUUM ANALYZE documents")
        host.say(f"search: {target:,} documents stored ({insert_s:.0f} s of COPY); searching")
        latencies, served = _served(options, data.queries)
        statements = _statements(options, query_vectors, collection_id, ef_search)
        exact = search_eval.exact_top_k(data.document_vectors[:target], query_vectors)
        results[str(target)] = {
            **step_figures(latencies, statements, served, exact, insert_s),
            "ef_search": ef_search,
        }
    return results


def _served(options: Options, queries: list[str]) -> tuple[list[float], list[list[int]]]:
    """End-to-end latencies of `search_requests` searches, and every query's served rows."""
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
    return latencies, [rows_of(served[index]) for index in range(len(queries))]


def _statements(
    options: Options, queries: F32, collection_id: int, ef_search: int
) -> list[tuple[float, bool]]:
    """The server's execution time (ms) of every query's search statement, as the backend
    runs it (its settings, its SQL), in one psql session in the postgres container; and
    whether its plan used the HNSW index."""
    documents = backend.module("database.documents")
    script = statement_script(
        documents.SETTINGS_SQL.text,
        documents.search_sql(queries.shape[1]).text,
        queries,
        {"model": MODEL, "collection_id": collection_id, "k": K},
        ef_search,
    )
    output = host.psql_script(options.host, script, "timing the search statement")
    found = search_eval.plans(output, f"ix_documents_embedding_vector_{queries.shape[1]}")
    if len(found) != len(queries):
        raise host.HostError(f"psql gave {len(found)} execution times for {len(queries)} queries")
    return found
