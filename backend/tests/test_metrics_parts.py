"""The metrics' parts one at a time: the summary's arithmetic (as PromQL computes it), the
batcher's queue instruments, the document counts' cache against a real database, the HTTP
middleware on a handler that fails, and the readiness probe of the metrics process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from anyio import CapacityLimiter
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from src.embeddings import Encoder
from src.embeddings.batching import Batcher, BatchLimits
from src.metrics.collectors import Documents, Release
from src.metrics.http import HttpMetrics
from src.metrics.instruments import Metrics
from src.metrics.summary import History, Snapshot, quantile, summarize
from tests.conftest import Database
from tests.support.database import migrated_and_seeded
from tests.support.net import closed_port

INF = float("inf")


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


# ---- the summary's arithmetic


def test_quantile_interpolates_within_the_bucket_as_histogram_quantile_does() -> None:
    # 10 requests under 0.1 s, 80 between 0.1 and 0.2 s, 10 between 0.2 and 0.5 s.
    buckets = [(0.1, 10.0), (0.2, 90.0), (0.5, 100.0), (INF, 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.15)  # rank 50: 40 of 80 into (0.1, 0.2]
    assert quantile(0.95, buckets) == pytest.approx(0.35)  # rank 95: 5 of 10 into (0.2, 0.5]
    assert quantile(0.05, buckets) == pytest.approx(0.05)  # the first bucket starts at 0


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert quantile(0.95, [(0.1, 1.0), (1.0, 2.0), (INF, 10.0)]) == 1.0


def test_quantile_of_no_requests_is_none() -> None:
    assert quantile(0.5, [(0.1, 0.0), (INF, 0.0)]) is None


def snap(at: float, requests: float, errors: float = 0, wait: float = 0) -> Snapshot:
    return Snapshot(at, requests, errors, ((0.1, requests), (INF, requests)), wait, 0)


def test_summary_is_the_difference_between_two_snapshots() -> None:
    old = snap(100.0, requests=1000, errors=10, wait=5.0)
    new = snap(400.0, requests=1600, errors=13, wait=35.0)
    figures = summarize(old, new)
    assert figures["window_seconds"] == 300.0
    assert (figures["requests"], figures["requests_per_second"]) == (600, 2.0)
    assert (figures["errors"], figures["error_ratio"]) == (3, 0.005)
    # 30 s of queueing spread over 300 s: on average 0.1 requests queued (Little's law).
    assert figures["queue_depth_mean"] == 0.1


def test_summary_without_requests_has_no_ratio_and_no_latency() -> None:
    figures = summarize(snap(0.0, 5), snap(300.0, 5))
    assert (figures["requests_per_second"], figures["error_ratio"]) == (0.0, None)
    assert (figures["latency_p50_seconds"], figures["latency_p95_seconds"]) == (None, None)


def test_history_compares_now_with_the_newest_snapshot_five_minutes_old() -> None:
    clock = [0.0]
    history = History(lambda: snap(clock[0], requests=clock[0]), every_s=10)
    for at in range(0, 401, 10):  # one snapshot every 10 s for 400 s, one request a second
        clock[0] = float(at)
        history.record()
    clock[0] = 405.0
    figures = history.summary()
    assert figures["window_seconds"] == 305.0, "against the snapshot of t=100 s"
    assert figures["requests_per_second"] == 1.0


def test_a_young_history_covers_the_time_since_its_first_snapshot() -> None:
    clock = [50.0]
    history = History(lambda: snap(clock[0], requests=clock[0] * 2), every_s=10)
    history.record()
    clock[0] = 80.0
    assert history.summary()["window_seconds"] == 30.0


# ---- the batcher's queue instruments


def test_queue_depth_and_wait_while_every_forward_pass_slot_is_busy(
    minilm_encoder: Encoder,
) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    model = {"model": "m"}

    async def scenario() -> tuple[float, float]:
        limiter = CapacityLimiter(1)
        batcher = Batcher(minilm_encoder, BatchLimits(0.0, 8192), limiter, metrics.batcher("m"))
        await limiter.acquire()  # the one slot busy: requests queue
        tasks = [asyncio.create_task(batcher.embed([f"text {i}"])) for i in range(3)]
        while value(registry, "nica_embeddings_queue_depth", **model) < 3:
            await asyncio.sleep(0.01)
        queued = value(registry, "nica_embeddings_queue_depth", **model)
        await asyncio.sleep(0.2)
        limiter.release()
        await asyncio.gather(*tasks)
        after = value(registry, "nica_embeddings_queue_depth", **model)
        await batcher.close()
        return queued, after

    queued, after = asyncio.run(scenario())
    assert (queued, after) == (3, 0), "three queued while the slot was busy, none after"
    assert value(registry, "nica_embeddings_queue_wait_seconds_count", **model) == 3
    assert value(registry, "nica_embeddings_queue_wait_seconds_sum", **model) >= 3 * 0.2
    assert value(registry, "nica_embeddings_batch_size_sum", **model) == 3, "one batch of 3"
    assert value(registry, "nica_embeddings_inference_seconds_count", **model) == 1


# ---- the document counts: one database read per interval


def test_document_counts_are_read_once_per_interval(
    empty_database: Database, tmp_path: Path
) -> None:
    # A database of its own: the session's seeded one gains documents from other tests.
    settings = empty_database.settings(tmp_path)
    migrated_and_seeded(settings)
    clock = [0.0]
    documents = Documents(settings, ttl_s=60, clock=lambda: clock[0])
    first = documents.counts()
    for at in (1.0, 30.0, 59.9):  # scrapes within the minute
        clock[0] = at
        assert documents.counts() == first
    assert documents.reads == 1, "one database read for four scrapes within a minute"
    clock[0] = 60.0
    documents.counts()
    assert documents.reads == 2
    assert first == {"default": 3}, first


def test_document_counts_are_left_out_while_the_database_is_down(
    seeded_database: Database, tmp_path: Path
) -> None:
    down = f"postgresql+psycopg://app@127.0.0.1:{closed_port()}/{seeded_database.name}"
    documents = Documents(seeded_database.settings(tmp_path, url=down))
    assert list(documents.collect()) == []


# ---- the HTTP middleware


def test_a_handler_that_raises_is_counted_as_500() -> None:
    registry = CollectorRegistry()
    app = FastAPI()

    @app.get("/v1/boom/{part}")
    def boom(part: str) -> None:
        raise RuntimeError(part)

    app.add_middleware(HttpMetrics, metrics=Metrics(registry), routes=app.router.routes)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/v1/boom/x").status_code == 500
    labels = {"route": "/v1/boom/{part}", "method": "GET", "status": "500"}
    assert value(registry, "nica_http_requests_total", **labels) == 1


# ---- the release and readiness of the metrics process


def test_not_ready_while_the_backend_does_not_answer() -> None:
    release = Release("", "", f"http://127.0.0.1:{closed_port()}/readyz")
    families = {family.name: family for family in release.collect()}
    assert families["nica_ready"].samples[0].value == 0
    assert families["nica_release"].samples[0].labels == {"release": "unknown", "slot": "unknown"}
