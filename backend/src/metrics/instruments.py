"""The instruments each worker records into: one Metrics per process, made by the app.

With PROMETHEUS_MULTIPROC_DIR set before prometheus_client is imported (the entrypoint does),
each value lives in a memory-mapped file of that folder named by the worker's PID, and the
metrics process (src.metrics.server) adds them up. Labels stay few and bounded: route templates
(never the raw path or the query), methods, status codes, the configured models.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from src.metrics import procfs

# Latency buckets (seconds): fine where requests are (a few ms to a few hundred ms), so the
# p50/p95 of /summary, interpolated within a bucket, stay close to the truth.
HTTP_SECONDS = (
    0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
    1.0, 2.0, 5.0, 10.0,
)  # fmt: skip
QUEUE_SECONDS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
TOKENIZE_SECONDS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
INFERENCE_SECONDS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
SEARCH_SECONDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
INPUTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
TOKENS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)


@dataclass(frozen=True)
class BatcherMetrics:
    """One model's embedding instruments, bound to its label once (src.embeddings.batching)."""

    tokenization: Histogram
    queue_wait: Histogram
    inference: Histogram
    batch_size: Histogram
    batch_tokens: Histogram
    request_inputs: Histogram
    request_tokens: Histogram
    queue_depth: Gauge

    def tokenized(self, seconds: float, inputs: int, tokens: int) -> None:
        """One request's texts were tokenized."""
        self.tokenization.observe(seconds)
        self.request_inputs.observe(inputs)
        self.request_tokens.observe(tokens)

    def batch(self, seconds: float, inputs: int, tokens: int) -> None:
        """One batch's forward passes ran."""
        self.inference.observe(seconds)
        self.batch_size.observe(inputs)
        self.batch_tokens.observe(tokens)


class Metrics:
    """The backend's instruments. `registry`: None in the server (the multiprocess files are
    the registry), a CollectorRegistry of its own in a test that reads values in-process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry
        self.http_requests = Counter(
            "nica_http_requests",
            "HTTP requests answered, by route template, method and status code "
            "(/healthz and /readyz not counted).",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "nica_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template, "
            "method and status code.",
            ["route", "method", "status"],
            buckets=HTTP_SECONDS,
            registry=r,
        )
        model = ["model"]
        self.tokenization = Histogram(
            "nica_embeddings_tokenization_seconds",
            "Time to tokenize one request's texts.",
            model,
            buckets=TOKENIZE_SECONDS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "nica_embeddings_queue_wait_seconds",
            "Time a request waited in its model's queue before its batch was formed.",
            model,
            buckets=QUEUE_SECONDS,
            registry=r,
        )
        self.inference = Histogram(
            "nica_embeddings_inference_seconds",
            "Time of one batch's forward passes.",
            model,
            buckets=INFERENCE_SECONDS,
            registry=r,
        )
        self.batch_size = Histogram(
            "nica_embeddings_batch_size",
            "Texts (inputs) in one batch.",
            model,
            buckets=INPUTS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "nica_embeddings_batch_tokens",
            "Tokens in one batch (special tokens included, before padding).",
            model,
            buckets=TOKENS,
            registry=r,
        )
        self.request_inputs = Histogram(
            "nica_embeddings_request_inputs",
            "Texts (inputs) in one request: POST /v1/embeddings' input, 1 for a document or "
            "a search query.",
            model,
            buckets=INPUTS,
            registry=r,
        )
        self.request_tokens = Histogram(
            "nica_embeddings_request_tokens",
            "Tokens of one request's texts (special tokens included, after truncation).",
            model,
            buckets=TOKENS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "nica_embeddings_queue_depth",
            "Requests waiting in the model's queue for a batch, over all live workers.",
            model,
            multiprocess_mode="livesum",
            registry=r,
        )
        self.search_statement = Histogram(
            "nica_search_statement_duration_seconds",
            "Time of GET /v1/search's database statement (its settings and the nearest-"
            "neighbour query).",
            buckets=SEARCH_SECONDS,
            registry=r,
        )
        self.worker_start_time = Gauge(
            "nica_worker_start_time_seconds",
            "Start time of each live uvicorn worker, since the Unix epoch, by PID.",
            multiprocess_mode="liveall",
            registry=r,
        )
        self._http: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    def worker_started(self) -> None:
        """Note this worker (its PID) as live: the metrics process reads its memory and CPU,
        and marks it dead once it is gone (src.metrics.collectors)."""
        started = procfs.start_time(os.getpid())
        self.worker_start_time.set(started if started is not None else time.time())

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, str(status))
        children = self._http.get(key)
        if children is None:
            children = self._http[key] = (
                self.http_requests.labels(*key),
                self.http_duration.labels(*key),
            )
        children[0].inc()
        children[1].observe(seconds)

    def batcher(self, model: str) -> BatcherMetrics:
        return BatcherMetrics(
            tokenization=self.tokenization.labels(model),
            queue_wait=self.queue_wait.labels(model),
            inference=self.inference.labels(model),
            batch_size=self.batch_size.labels(model),
            batch_tokens=self.batch_tokens.labels(model),
            request_inputs=self.request_inputs.labels(model),
            request_tokens=self.request_tokens.labels(model),
            queue_depth=self.queue_depth.labels(model),
        )
