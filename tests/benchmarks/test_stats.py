"""benchmarks/nicabench/stats.py: the figures the benchmark reports, from known inputs."""

from __future__ import annotations

import math

import pytest

from benchmarks.nicabench.stats import (
    Block,
    megabytes_per_s,
    percentile,
    pool,
    ratio,
    recall_at_k,
    summarize,
    top_agrees,
)


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0, 5.0]  # unsorted on purpose
    assert percentile(values, 0.5) == 3.0, "the median of 1..5 is 3"
    assert percentile(values, 0.95) == pytest.approx(4.8), "95% of the way from 1 to 5"
    assert percentile(values, 0.0) == 1.0 and percentile(values, 1.0) == 5.0


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.0], 0.95) == 7.0


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_percentile_refuses_a_fraction_outside_0_to_1(fraction: float) -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        percentile([1.0], fraction)


def test_summarize_gives_rate_over_wall_time_and_percentiles_in_ms() -> None:
    latencies = [0.010] * 19 + [0.100]  # 20 requests, one slow
    figures = summarize(latencies, failed=2, wall_s=0.5)
    assert figures.requests == 20 and figures.failed == 2
    assert figures.requests_per_s == pytest.approx(40.0), "20 successes in 0.5 s"
    assert figures.p50_ms == pytest.approx(10.0)
    assert figures.p95_ms == pytest.approx(14.5), "0.95 x 19 = rank 18.05, 5% toward 100 ms"


def test_summarize_of_no_success_has_no_percentiles() -> None:
    figures = summarize([], failed=3, wall_s=1.0)
    assert figures.requests == 0 and figures.requests_per_s == 0.0
    assert math.isnan(figures.p95_ms), "no latency measured: NaN, printed as '-'"


def test_pool_counts_every_latency_over_the_blocks_wall_time() -> None:
    fast = Block((0.01,) * 10, failed=0, wall_s=1.0)
    slow = Block((0.10,) * 10, failed=1, wall_s=3.0, first_error="HTTP 503")
    figures = pool([fast, slow])
    assert figures.requests == 20 and figures.failed == 1
    assert figures.requests_per_s == pytest.approx(5.0), "20 successes in 1 + 3 s"
    assert figures.p50_ms == pytest.approx(55.0), "the median of all 20, not of two medians"


def test_ratio_is_missing_when_the_anchor_is_zero_or_missing() -> None:
    assert ratio(90.0, 45.0) == 2.0
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(math.nan, 1.0))


def test_megabytes_per_s_uses_decimal_megabytes() -> None:
    assert megabytes_per_s(90_000_000, 2.0) == 45.0


def test_recall_at_k_counts_the_exact_top_k_found_in_any_order() -> None:
    exact = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    served = [2, 1, 3, 4, 5, 6, 7, 8, 99, 98]
    assert recall_at_k(served, exact, 10) == 0.8, "8 of the exact top 10, order aside"
    assert recall_at_k(served[:5], exact, 10) == 0.5, "a short answer misses the rest"


def test_recall_at_k_refuses_an_exact_result_shorter_than_k() -> None:
    with pytest.raises(ValueError, match=r"fewer than k=10"):
        recall_at_k([1], [1, 2], 10)


def test_top_agrees_compares_the_first_results_only() -> None:
    assert top_agrees(["a", "x"], ["a", "y"])
    assert not top_agrees(["b", "a"], ["a", "b"])
    assert not top_agrees([], ["a"]), "no result never agrees"
