"""Figures from raw measurements: percentiles, throughput, ratios, recall (pure functions)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Latency:
    """What a block of requests measured: how many, how many failed, how fast."""

    requests: int  # answered successfully
    failed: int
    seconds: float  # wall time of the block(s)
    requests_per_s: float
    p50_ms: float
    p95_ms: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "requests_per_s": round(self.requests_per_s, 2),
            "p50_ms": round(self.p50_ms, 2),
            "p95_ms": round(self.p95_ms, 2),
        }


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile (0..1) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within 0..1, not {fraction}")
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(latencies_s: Sequence[float], failed: int, wall_s: float) -> Latency:
    """Latency percentiles (in ms) of the successful requests and their rate over `wall_s`."""
    if wall_s <= 0:
        raise ValueError(f"wall time must be positive, not {wall_s}")
    if not latencies_s:
        return Latency(0, failed, wall_s, 0.0, math.nan, math.nan)
    return Latency(
        requests=len(latencies_s),
        failed=failed,
        seconds=wall_s,
        requests_per_s=len(latencies_s) / wall_s,
        p50_ms=percentile(latencies_s, 0.50) * 1000,
        p95_ms=percentile(latencies_s, 0.95) * 1000,
    )


@dataclass(frozen=True)
class Block:
    """One timed block of requests: each success's latency (s), the failures, the wall time."""

    latencies_s: tuple[float, ...]
    failed: int
    wall_s: float
    first_error: str = ""


def pool(blocks: Sequence[Block]) -> Latency:
    """Blocks of one measurement, taken in several rounds, as one: every latency, and the
    successes over the blocks' total wall time (the time between the blocks not counted)."""
    if not blocks:
        raise ValueError("no blocks to pool")
    latencies = [value for block in blocks for value in block.latencies_s]
    return summarize(
        latencies, sum(block.failed for block in blocks), sum(block.wall_s for block in blocks)
    )


def ratio(ours: float, theirs: float) -> float:
    """ours / theirs; NaN when either is missing (NaN) or theirs is 0."""
    if math.isnan(ours) or math.isnan(theirs) or theirs == 0:
        return math.nan
    return ours / theirs


def megabytes_per_s(size_bytes: int, seconds: float) -> float:
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, not {seconds}")
    return size_bytes / 1e6 / seconds


def recall_at_k(served: Sequence[Hashable], exact: Sequence[Hashable], k: int) -> float:
    """How many of the exact top k (ids) the served top k holds, over k (exact has at least k)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    if len(exact) < k:
        raise ValueError(f"the exact result has {len(exact)} ids, fewer than k={k}")
    return len(set(served[:k]) & set(exact[:k])) / k


def top_agrees(served: Sequence[Hashable], exact: Sequence[Hashable]) -> bool:
    """The served search's first result is the exact search's first result."""
    return bool(served) and bool(exact) and served[0] == exact[0]
