"""The last five minutes without a Prometheus: periodic snapshots of the workers' counters,
and the differences between now and five minutes ago (GET /summary of the metrics process).

    {"window_seconds": 300.0, "requests": 1200, "requests_per_second": 4.0,
     "errors": 0, "error_ratio": 0.0,
     "latency_p50_seconds": 0.012, "latency_p95_seconds": 0.031,
     "queue_depth": 0, "queue_depth_mean": 0.02,
     "release": "...", "slot": "blue", "ready": true}

- window_seconds: the span the figures cover; shorter than 300 while the metrics process is
  younger than five minutes (it keeps its snapshots in memory).
- requests, requests_per_second: answered HTTP requests (health probes not counted).
- errors, error_ratio: those answered 5xx, and their share (null without requests).
- latency_p50/p95_seconds: estimated from nica_http_request_duration_seconds' buckets as
  PromQL's histogram_quantile() does (null without requests).
- queue_depth: embedding requests queued now, over all workers; queue_depth_mean: the average
  over the window (their total queueing time divided by the window, by Little's law).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics_core import Metric

logger = logging.getLogger(__name__)

WINDOW_S = 300.0
SNAPSHOT_EVERY_S = 10.0
REQUESTS = "nica_http_requests"
DURATION = "nica_http_request_duration_seconds"
QUEUE_WAIT = "nica_embeddings_queue_wait_seconds"
QUEUE_DEPTH = "nica_embeddings_queue_depth"


@dataclass(frozen=True)
class Snapshot:
    at: float  # a monotonic clock's seconds
    requests: float
    errors: float  # answered 5xx
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), +Inf last
    queue_wait_s: float  # total queueing time of the embedding requests so far
    queue_depth: float  # queued now


def snapshot(families: Iterable[Metric], at: float) -> Snapshot:
    """The totals over every label set of the collected families."""
    requests = errors = queue_wait = depth = 0.0
    buckets: dict[float, float] = {}
    for family in families:
        for sample in family.samples:
            if family.name == REQUESTS and sample.name == REQUESTS + "_total":
                requests += sample.value
                if sample.labels.get("status", "").startswith("5"):
                    errors += sample.value
            elif family.name == DURATION and sample.name == DURATION + "_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif family.name == QUEUE_WAIT and sample.name == QUEUE_WAIT + "_sum":
                queue_wait += sample.value
            elif family.name == QUEUE_DEPTH:
                depth += sample.value
    return Snapshot(at, requests, errors, tuple(sorted(buckets.items())), queue_wait, depth)


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """PromQL's histogram_quantile over cumulative (upper bound, count) buckets: linear within
    the bucket the rank falls in; the highest finite bound if it falls in +Inf."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def summarize(old: Snapshot, new: Snapshot) -> dict[str, Any]:
    """The figures between two snapshots (see the module doc)."""
    seconds = max(new.at - old.at, 0.0)
    requests = max(new.requests - old.requests, 0.0)
    errors = max(new.errors - old.errors, 0.0)
    previous = dict(old.buckets)
    delta = [(bound, max(count - previous.get(bound, 0.0), 0.0)) for bound, count in new.buckets]
    p50, p95 = quantile(0.50, delta), quantile(0.95, delta)
    return {
        "window_seconds": round(seconds, 1),
        "requests": int(requests),
        "requests_per_second": round(requests / seconds, 3) if seconds > 0 else 0.0,
        "errors": int(errors),
        "error_ratio": round(errors / requests, 4) if requests else None,
        "latency_p50_seconds": None if p50 is None else round(p50, 4),
        "latency_p95_seconds": None if p95 is None else round(p95, 4),
        "queue_depth": int(new.queue_depth),
        "queue_depth_mean": (
            round(max(new.queue_wait_s - old.queue_wait_s, 0.0) / seconds, 3) if seconds else 0.0
        ),
    }


class History:
    """Snapshots every SNAPSHOT_EVERY_S (a thread), enough to reach WINDOW_S back."""

    def __init__(
        self,
        take: Callable[[], Snapshot],
        window_s: float = WINDOW_S,
        every_s: float = SNAPSHOT_EVERY_S,
    ) -> None:
        self._take = take
        self._window_s = window_s
        self._every_s = every_s
        self._snapshots: deque[Snapshot] = deque(maxlen=int(window_s // every_s) + 2)
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def record(self) -> Snapshot:
        taken = self._take()
        with self._lock:
            self._snapshots.append(taken)
        return taken

    def summary(self) -> dict[str, Any]:
        """Now against the newest snapshot at least WINDOW_S old (else the oldest)."""
        now = self._take()
        with self._lock:
            old = next(
                (s for s in reversed(self._snapshots) if now.at - s.at >= self._window_s),
                self._snapshots[0] if self._snapshots else now,
            )
        return summarize(old, now)

    def run(self) -> None:
        """Take a snapshot every `every_s` until stop(); a failed one is logged and skipped."""
        while not self._stop.wait(self._every_s):
            try:
                self.record()
            except Exception:  # e.g. a file being written: the next snapshot is 10 s away
                logger.exception("metrics: snapshot failed")

    def start(self) -> threading.Thread:
        """Take the first snapshot now (before anything is served), the others in a thread."""
        self.record()
        thread = threading.Thread(target=self.run, name="metrics-snapshots", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
