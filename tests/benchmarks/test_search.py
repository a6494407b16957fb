"""benchmarks/nicabench/search.py, its parts that need no host: the COPY rows, the titles'
rows, the statement script (with the backend's own SQL) and one step's figures."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.nicabench import backend
from benchmarks.nicabench.search import copy_payload, rows_of, statement_script, step_figures
from benchmarks.nicabench.search_eval import exact_top_k


def test_copy_rows_carry_each_float32_exactly() -> None:
    vectors = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    lines = copy_payload(7, 40, vectors, ["a", "tab\there", "c"]).decode().splitlines()
    fields = [line.split("\t") for line in lines]
    assert [f[:3] for f in fields] == [
        ["7", "bench-0000040", "a"],
        ["7", "bench-0000041", "tab\\there"],
        ["7", "bench-0000042", "c"],
    ], "collection, title of the row, body (escaped for COPY)"
    read_back = np.array([[float(x) for x in f[3].strip("{}").split(",")] for f in fields])
    assert np.array_equal(read_back.astype(np.float32), vectors), "stored = what NumPy ranks"


def test_rows_of_titles() -> None:
    assert rows_of(["bench-0000012", "seed doc", "bench-0099999"]) == [12, -1, 99999]


def test_statement_script_times_the_backends_own_statement_once_per_query() -> None:
    documents = backend.module("database.documents")
    queries = np.full((3, 384), 0.05, dtype=np.float32)
    script = statement_script(
        documents.SETTINGS_SQL.text,
        documents.search_sql(384).text,
        queries,
        {"model": "m/x", "collection_id": 5, "k": 10},
        ef_search=123,
    )
    assert script.count("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON)") == 3
    assert script.count("BEGIN;") == script.count("COMMIT;") == 3, "settings are per transaction"
    assert "set_config('hnsw.ef_search', '123', true)" in script
    assert "ORDER BY CAST(d.embedding_vector AS vector(384)) <=>" in script
    assert " :" not in script.replace("::", ""), "every parameter written as a literal"


def test_step_figures_hold_both_latencies_and_the_agreement() -> None:
    stored = np.eye(12, dtype=np.float32)
    exact = exact_top_k(stored, stored[:2])
    served = [list(range(10)), [0, *range(2, 11)]]
    statements = [(1.0, True), (2.0, False), (3.0, True)]
    figures = step_figures([0.010, 0.020, 0.030], statements, served, exact, 4.04)
    assert (figures["p50_ms"], figures["statement_p50_ms"]) == (20.0, 2.0)
    assert figures["statements_using_the_index"] == 2
    assert figures["statement_p95_ms"] == pytest.approx(2.9)
    assert figures["top1_agreement"] == 0.5, "query 2's exact top result is row 1"
    assert (figures["queries"], figures["requests"], figures["insert_s"]) == (2, 3, 4.0)
