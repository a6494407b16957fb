"""The search statement alone, on a PostgreSQL of your own: latency, recall@10 and top-1
agreement at several hnsw.ef_search values and HNSW build parameters, no demo host needed.

    benchmarks/pg17_chroot.sh start                    # PostgreSQL 17 + pgvector as the stack's
    python -m benchmarks.nicabench.index_bench --dsn postgresql://postgres@127.0.0.1:55417/postgres
    benchmarks/pg17_chroot.sh stop

It makes (drops first) the database `nica_search_bench` on that server, migrates it to head
with the backend's migrations (so the schema, the trigger and the HNSW index are the
release's), and COPYs the test set's documents (benchmarks/nicabench/search_data.py: distinct
synthetic sentences embedded by the real model) into one collection, through the index as any
insert. Per index (the migration's first, then each --index m:ef_construction, rebuilt with
CREATE INDEX) and per --ef value: every query once untimed, then each query through the
backend's own search function (src.database.documents.search: its settings, its statement)
timed around the statement, and its EXPLAIN (ANALYZE, TIMING OFF) execution time; the served
top 10 against the exact top 10 (NumPy, every stored vector). A table on stdout, JSON in
build/reports/search-index.json. Superuser DSN (CREATE DATABASE, CREATE EXTENSION).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url

from . import backend, search_data, search_eval
from .options import REPO, OptionError, bounded_int, int_list
from .search_data import F32

DATABASE = "nica_search_bench"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384
INDEX = f"ix_documents_embedding_vector_{DIMENSION}"
DEFAULT_JSON = REPO / "build" / "reports" / "search-index.json"


def index_list(text_value: str) -> tuple[tuple[int, int], ...]:
    """ "16:64,24:128" -> ((16, 64), (24, 128)): HNSW m and ef_construction."""
    pairs = []
    for part in (item.strip() for item in text_value.split(",") if item.strip()):
        m_text, _, ef_text = part.partition(":")
        try:
            m, ef = bounded_int(2, 100)(m_text), bounded_int(4, 1000)(ef_text)
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentTypeError(
                f"{part!r}: {error} (give m:ef_construction)"
            ) from None
        if ef < 2 * m:
            raise argparse.ArgumentTypeError(f"{part!r}: ef_construction must be >= 2 * m")
        pairs.append((m, ef))
    return tuple(pairs)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise OptionError(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m benchmarks.nicabench.index_bench", description=__doc__)
    p.add_argument("--dsn", required=True, help="postgresql://superuser@host:port/db")
    p.add_argument("--documents", type=bounded_int(100, 200_000), default=100_000, help="(100000)")
    p.add_argument("--queries", type=bounded_int(10, 384), default=200, help="(200)")
    p.add_argument(
        "--ef",
        type=int_list(1, 1000, increasing=True),
        default=(40, 100, 200, 400),
        help="hnsw.ef_search values (40,100,200,400)",
    )
    p.add_argument(
        "--index",
        type=index_list,
        default=(),
        help="also rebuild the index with these m:ef_construction pairs, e.g. 16:128,24:200",
    )
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"({DEFAULT_JSON})")
    return p


def fresh_database(dsn: str) -> Engine:
    """The benchmark's own database, dropped and created again, migrated to head."""
    url = make_url(dsn).set(drivername="postgresql+psycopg")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {DATABASE}"))
    admin.dispose()
    engine = create_engine(url.set(database=DATABASE))
    backend.module("database.migrations").upgrade_to_head(engine)
    return engine


def copy_documents(engine: Engine, documents: Sequence[str], vectors: F32) -> tuple[int, float]:
    """COPY the documents (titles doc-<row>) into a new collection; its id and the seconds."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("INSERT INTO collections (name) VALUES ('bench') RETURNING id")
        created = cursor.fetchone()
        if created is None:
            raise RuntimeError("INSERT INTO collections returned no id")
        collection = int(created[0])
        started = time.monotonic()
        for start in range(0, len(documents), 10_000):
            numbers = io.StringIO()
            np.savetxt(numbers, vectors[start : start + 10_000], fmt="%.9g", delimiter=",")
            rows = io.StringIO()
            for offset, line in enumerate(numbers.getvalue().splitlines()):
                body = documents[start + offset].replace("\\", "\\\\").replace("\t", " ")
                rows.write(
                    f"{collection}\tdoc-{start + offset:07d}\t{body}\t{{{line}}}\t{MODEL}\t"
                    f"{DIMENSION}\n"
                )
            with cursor.copy(
                "COPY documents (collection_id, title, body, embedding, embedding_model, "
                "embedding_dim) FROM STDIN"
            ) as copy:
                copy.write(rows.getvalue())
            raw.commit()
            done = min(start + 10_000, len(documents))
            say(f"copied {done:,} of {len(documents):,} ({time.monotonic() - started:.0f} s)")
        seconds = time.monotonic() - started
    finally:
        raw.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE documents"))
    return collection, seconds


def rebuild_index(engine: Engine, m: int, ef_construction: int) -> float:
    """The migration's index dropped and built again WITH (m, ef_construction); seconds."""
    started = time.monotonic()
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
        connection.execute(text(f"DROP INDEX {INDEX}"))
        connection.execute(
            text(
                f"CREATE INDEX {INDEX} ON documents USING hnsw "
                f"((CAST(embedding_vector AS vector({DIMENSION}))) vector_cosine_ops) "
                f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)}) "
                f"WHERE embedding_dim = {DIMENSION}"
            )
        )
    return time.monotonic() - started


def _served(
    connection: Connection, query: F32, collection: int, ef: int
) -> tuple[list[str], float]:
    documents = backend.module("database.documents")
    parameters = documents.search_settings(connection, query, MODEL, search_eval.K, collection, ef)
    started = time.perf_counter()
    rows = connection.execute(documents.search_sql(DIMENSION), parameters).all()
    elapsed = time.perf_counter() - started
    return [row.title for row in rows], elapsed * 1000


def _execution_ms(
    connection: Connection, query: F32, collection: int, ef: int
) -> tuple[float, bool]:
    documents = backend.module("database.documents")
    parameters = documents.search_settings(connection, query, MODEL, search_eval.K, collection, ef)
    plan = connection.execute(
        text("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + documents.search_sql(DIMENSION).text),
        parameters,
    ).scalar_one()
    (found,) = search_eval.plans(json.dumps(plan), INDEX)
    return found


def measure_ef(
    engine: Engine, queries: F32, collection: int, ef: int, exact: search_eval.Exact
) -> dict[str, Any]:
    """One ef_search value: latency of every query (statement and server execution) and the
    agreement of the served rankings with the exact ones."""
    served: list[list[int]] = []
    statement_ms: list[float] = []
    execution: list[tuple[float, bool]] = []
    with engine.connect() as connection:
        for query in queries:  # untimed: the index's pages into memory
            with connection.begin():
                _served(connection, query, collection, ef)
        for query in queries:
            with connection.begin():
                titles, elapsed = _served(connection, query, collection, ef)
            with connection.begin():
                execution.append(_execution_ms(connection, query, collection, ef))
            served.append([int(title.removeprefix("doc-")) for title in titles])
            statement_ms.append(elapsed)
    return {
        "ef_search": ef,
        "statement": search_eval.latency_ms(statement_ms),
        "execution": search_eval.latency_ms([time_ms for time_ms, _ in execution]),
        "plans_using_the_index": sum(used for _, used in execution),
        **search_eval.agreement(served, exact),
        **search_eval.top1_by_kind(served, exact, search_data.paraphrases(len(served))),
    }


def run(options: argparse.Namespace) -> dict[str, Any]:
    recipe = search_data.Recipe(
        options.documents, search_data.SEED, search_data.weights_digest(search_data.MODEL_DIR)
    )
    embed = search_data.backend_encoder(search_data.MODEL_DIR)
    data = search_data.load_or_make(recipe, options.queries, search_data.CACHE_DIR, embed)
    query_vectors = embed(data.queries)
    engine = fresh_database(options.dsn)
    try:
        with engine.connect() as connection:
            server = connection.execute(text("SELECT version()")).scalar_one()
            pgvector = connection.execute(
                text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            ).scalar_one()
        say(f"{server.split(' on ')[0]}, pgvector {pgvector}: copying {options.documents:,} rows")
        collection, copy_s = copy_documents(engine, data.documents, data.document_vectors)
        exact = search_eval.exact_top_k(data.document_vectors, query_vectors)
        indexes: list[dict[str, Any]] = []
        builds: list[tuple[str, tuple[int, int] | None]] = [
            ("migration 0003 (m 16, ef_construction 64), built by the inserts", None)
        ]
        builds += [
            (f"m {m}, ef_construction {ef}, CREATE INDEX", (m, ef)) for m, ef in options.index
        ]
        for name, parameters in builds:
            build_s = None if parameters is None else rebuild_index(engine, *parameters)
            steps = []
            for ef in options.ef:
                say(f"{name}: ef_search {ef}")
                steps.append(measure_ef(engine, query_vectors, collection, ef, exact))
                last = steps[-1]
                say(
                    f"  statement p95 {last['statement']['p95_ms']} ms, recall@10 "
                    f"{last['recall_at_10']}, top-1 {last['top1_agreement']} "
                    f"(paraphrases {last['top1_agreement_paraphrases']})"
                )
            indexes.append(
                {
                    "index": name,
                    "build_s": None if build_s is None else round(build_s, 1),
                    "ef": steps,
                }
            )
    finally:
        engine.dispose()
    return {
        "server": server.split(" on ")[0],
        "pgvector": pgvector,
        "documents": options.documents,
        "queries": options.queries,
        "copy_s": round(copy_s, 1),
        "margins": search_eval.margins(exact),
        "indexes": indexes,
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "cores": os.cpu_count(),
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        f"{results['server']}, pgvector {results['pgvector']}, {results['documents']:,} "
        f"documents, {results['queries']} queries, load average {results['load_average']}",
        "| index | ef_search | statement p50 / p95 | execution p50 / p95 | recall@10 "
        "| top-1 same |",
        "|---|---|---|---|---|---|",
    ]
    for index in results["indexes"]:
        for step in index["ef"]:
            lines.append(
                f"| {index['index']} | {step['ef_search']} | "
                f"{step['statement']['p50_ms']:.1f} / {step['statement']['p95_ms']:.1f} ms | "
                f"{step['execution']['p50_ms']:.1f} / {step['execution']['p95_ms']:.1f} ms | "
                f"{step['recall_at_10']:.3f} | {step['top1_agreement'] * 100:.1f}% "
                f"(paraphrases {step['top1_agreement_paraphrases'] * 100:.0f}%, unrelated "
                f"{step['top1_agreement_unrelated'] * 100:.0f}%; "
                f"{step['top1_misses_tied']} of the misses ties) |"
            )
    return "\n".join(lines)


def say(text_value: str) -> None:
    print(f"==> index bench: {text_value}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        options = parser().parse_args(sys.argv[1:] if argv is None else argv)
    except OptionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    results = run(options)
    options.json.parent.mkdir(parents=True, exist_ok=True)
    options.json.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\n(JSON: {options.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
