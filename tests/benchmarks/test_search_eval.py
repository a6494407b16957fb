"""benchmarks/nicabench/search_eval.py: the exact ranking, the agreement figures, the
statement's literal SQL and its execution times, from known inputs."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.nicabench.search_eval import (
    agreement,
    exact_top_k,
    execution_ms,
    literal_sql,
    margins,
    plans,
    top1_by_kind,
)

STORED = np.array(
    [[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [0.6, 0.8], [-1.0, 0.0]], dtype=np.float32
)  # row 1 is not normalized on purpose: cosine, not dot product
QUERIES = np.array([[1.0, 0.1], [0.0, 1.0]], dtype=np.float32)


def test_exact_top_k_ranks_by_cosine_best_first() -> None:
    exact = exact_top_k(STORED, QUERIES, k=3)
    assert exact.rows == [[0, 2, 3], [1, 3, 2]]
    assert exact.scores[1][0] == pytest.approx(1.0), "row 1 points the same way as query 1"


def test_exact_top_k_breaks_ties_by_the_lower_row() -> None:
    stored = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    assert exact_top_k(stored, np.array([[1.0, 0.0]], dtype=np.float32), k=2).rows == [[1, 2]]


def test_agreement_counts_recall_and_top1() -> None:
    exact = exact_top_k(STORED, QUERIES, k=3)
    figures = agreement([[0, 3, 2], [3, 1, 4]], exact, k=3)
    assert figures["recall_at_10"] == pytest.approx((1.0 + 2 / 3) / 2, abs=1e-4)
    assert figures["recall_at_10_min"] == 0.67
    assert figures["top1_agreement"] == 0.5, "query 2's top result is row 3, not row 1"
    assert (figures["top1_misses"], figures["top1_misses_tied"]) == (1, 0)


def test_a_top1_miss_within_float_rounding_counts_as_a_tie() -> None:
    stored = np.array([[1.0, 0.0], [1.0, 1e-4], [0.0, 1.0]], dtype=np.float32)
    exact = exact_top_k(stored, np.array([[1.0, 0.0]], dtype=np.float32), k=2)
    figures = agreement([[1, 0]], exact, k=2)
    assert (figures["top1_misses"], figures["top1_misses_tied"]) == (1, 1), (
        "row 1 scores 1 - 5e-9 against row 0's 1: a tie, not a wrong ranking"
    )


def test_agreement_wants_one_ranking_per_query() -> None:
    with pytest.raises(ValueError, match="1 served rankings for 2 queries"):
        agreement([[0, 3, 2]], exact_top_k(STORED, QUERIES, k=3), k=3)


def test_margins_give_the_gap_between_first_and_second() -> None:
    exact = exact_top_k(STORED, QUERIES, k=2)
    gaps = sorted(scores[0] - scores[1] for scores in exact.scores)
    figures = margins(exact)
    assert figures["top1_top2_gap_median"] == pytest.approx(sum(gaps) / 2, abs=1e-5)
    assert figures["top1_top2_gap_below_0_001"] == 0


def test_literal_sql_writes_each_parameter_as_a_literal() -> None:
    statement = (
        "SELECT CAST(CAST(:query AS float4[]) AS vector(2)) <=> x FROM t "
        "WHERE m = :model AND (CAST(:collection_id AS bigint) IS NULL OR c = :collection_id) "
        "AND y::text = 'a' LIMIT :k"
    )
    rendered = literal_sql(
        statement, {"query": [0.5, 0.25], "model": "o'brien/m", "collection_id": None, "k": 10}
    )
    assert rendered == (
        "SELECT CAST(CAST('{0.5,0.25}' AS float4[]) AS vector(2)) <=> x FROM t "
        "WHERE m = 'o''brien/m' AND (CAST(NULL AS bigint) IS NULL OR c = NULL) "
        "AND y::text = 'a' LIMIT 10"
    ), "a :: cast is not a parameter; quotes in strings doubled"


def test_literal_sql_writes_float32_values_exactly() -> None:
    value = float(np.float32(0.1))
    (text,) = literal_sql(":v", {"v": [value]}).strip("'{}").split(",")
    assert np.float32(float(text)) == np.float32(value), "9 significant digits: float32 exact"


def test_literal_sql_refuses_a_parameter_without_a_value() -> None:
    with pytest.raises(ValueError, match=":k"):
        literal_sql("SELECT 1 LIMIT :k", {})


def test_execution_ms_reads_every_explain_json_in_order() -> None:
    output = (
        "400|strict_order|off\n"
        '[{"Plan": {"Node Type": "Limit"}, "Planning Time": 0.2, "Execution Time": 3.125}]\n'
        "400|strict_order|off\n"
        '[\n  {\n    "Plan": {},\n    "Execution Time": 12.5\n  }\n]\n'
    )
    assert execution_ms(output) == [3.125, 12.5]


def test_plans_say_which_used_the_index() -> None:
    output = (
        '[{"Plan": {"Node Type": "Limit", "Plans": [{"Node Type": "Index Scan", '
        '"Index Name": "ix_hnsw"}]}, "Execution Time": 1.5}]\n'
        '[{"Plan": {"Node Type": "Limit", "Plans": [{"Node Type": "Bitmap Index Scan", '
        '"Index Name": "uq_documents_collection_id_title"}]}, "Execution Time": 20.0}]\n'
    )
    assert plans(output, "ix_hnsw") == [(1.5, True), (20.0, False)]


def test_top1_by_kind_splits_paraphrases_from_unrelated_queries() -> None:
    stored = np.eye(4, dtype=np.float32)
    exact = exact_top_k(stored, stored, k=2)
    served = [[0, 1], [1, 0], [3, 2], [3, 2]]  # the third query's top result is wrong
    found = top1_by_kind(served, exact, paraphrases=2)
    assert all(isinstance(value, float) for value in found.values()), "JSON numbers as floats"
    assert found == {
        "top1_agreement_paraphrases": 1.0,
        "top1_agreement_unrelated": 0.5,
    }
