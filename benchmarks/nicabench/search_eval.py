"""What a search run is judged by (pure functions): the exact nearest rows by NumPy, how far
the served ranking agrees with them, and the search statement's own timing from EXPLAIN.

Agreement per query set: recall@10 (how many of the exact top 10 the served top 10 holds),
top-1 agreement (the served first row is the exact first row), and, of the top-1 misses, how
many are ties within float32 rounding (the served first row scores within TIE of the best
exactly, so no search over float32 vectors can be said to have ranked it wrong).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .stats import percentile, recall_at_k, top_agrees

F32 = npt.NDArray[np.float32]
TIE = 1e-6  # cosine; float32 rounding of a 384-dimensional dot product is about 1e-7
K = 10
_EXECUTION = re.compile(r'"Execution Time":\s*([0-9.]+)')
_PARAMETER = re.compile(r"(?<![:\w]):([a-z_]+)\b")


@dataclass(frozen=True)
class Exact:
    """The exact top k rows (indices into the stored vectors) and their cosine scores."""

    rows: list[list[int]]
    scores: list[list[float]]
    all_scores: npt.NDArray[np.float64]  # [queries, stored]: to score any served row


def exact_top_k(stored: F32, queries: F32, k: int = K) -> Exact:
    """Nearest rows by cosine over every stored vector, best first (ties: lower row first)."""
    matrix = stored.astype(np.float64)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    asked = queries.astype(np.float64)
    asked /= np.linalg.norm(asked, axis=1, keepdims=True)
    scores = asked @ matrix.T
    rows, best = [], []
    for line in scores:
        order = np.argsort(-line, kind="stable")[:k]
        rows.append([int(row) for row in order])
        best.append([float(line[row]) for row in order])
    return Exact(rows, best, scores)


def agreement(served: Sequence[Sequence[int]], exact: Exact, k: int = K) -> dict[str, float]:
    """recall@k (mean and worst), top-1 agreement, and the top-1 misses that are float ties."""
    if len(served) != len(exact.rows):
        raise ValueError(f"{len(served)} served rankings for {len(exact.rows)} queries")
    recalls = [
        recall_at_k(mine, theirs, k) for mine, theirs in zip(served, exact.rows, strict=True)
    ]
    misses = [i for i, mine in enumerate(served) if not top_agrees(mine, exact.rows[i])]
    ties = [
        i
        for i in misses
        if served[i] and exact.scores[i][0] - exact.all_scores[i, served[i][0]] <= TIE
    ]
    return {
        "recall_at_10": round(statistics.mean(recalls), 4),
        "recall_at_10_min": round(min(recalls), 2),
        "top1_agreement": round(1 - len(misses) / len(served), 4),
        "top1_misses": len(misses),
        "top1_misses_tied": len(ties),
    }


def top1_by_kind(
    served: Sequence[Sequence[int]], exact: Exact, paraphrases: int
) -> dict[str, float]:
    """Top-1 agreement of the first `paraphrases` queries and of the rest (unrelated ones)."""
    agree = [top_agrees(mine, theirs) for mine, theirs in zip(served, exact.rows, strict=True)]
    if not 0 < paraphrases < len(agree):
        raise ValueError(f"{paraphrases} paraphrases of {len(agree)} queries: both kinds needed")
    return {
        "top1_agreement_paraphrases": round(float(statistics.mean(agree[:paraphrases])), 4),
        "top1_agreement_unrelated": round(float(statistics.mean(agree[paraphrases:])), 4),
    }


def margins(exact: Exact) -> dict[str, float]:
    """How clear each query's exact winner is: the cosine gap between its first and second."""
    gaps = [scores[0] - scores[1] for scores in exact.scores]
    return {
        "top1_top2_gap_median": round(statistics.median(gaps), 5),
        "top1_top2_gap_p5": round(percentile(gaps, 0.05), 5),
        "top1_top2_gap_below_0_001": sum(gap < 0.001 for gap in gaps),
    }


def literal_sql(statement: str, parameters: Mapping[str, object]) -> str:
    """`statement` with each :name replaced by its value as an SQL literal (numbers, None,
    strings, lists of floats as a float4[] literal), for psql; unknown names are an error."""

    def literal(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in parameters:
            raise ValueError(f"no value for the statement's parameter :{name}")
        value = parameters[name]
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return repr(value)
        if isinstance(value, list | tuple):
            return "'{" + ",".join(f"{float(item):.9g}" for item in value) + "}'"
        return "'" + str(value).replace("'", "''") + "'"

    return _PARAMETER.sub(literal, statement)


def execution_ms(explain_output: str) -> list[float]:
    """Every "Execution Time" (ms) of EXPLAIN (ANALYZE, FORMAT JSON) output, in order."""
    return [time_ms for time_ms, _ in plans(explain_output, "")]


def plans(explain_output: str, index: str) -> list[tuple[float, bool]]:
    """Per EXPLAIN (ANALYZE, FORMAT JSON) in the output, in order: its execution time (ms) and
    whether its plan scans `index` (the planner may prefer an exact scan of a collection's rows
    through another index when that looks cheaper)."""
    found, start = [], 0
    for match in _EXECUTION.finditer(explain_output):
        plan = explain_output[start : match.start()]
        found.append((float(match.group(1)), f'"Index Name": "{index}"' in plan))
        start = match.end()
    return found


def latency_ms(values_ms: Sequence[float]) -> dict[str, float]:
    """p50 and p95 of a list of milliseconds."""
    return {
        "p50_ms": round(percentile(values_ms, 0.50), 2),
        "p95_ms": round(percentile(values_ms, 0.95), 2),
    }
