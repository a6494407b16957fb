"""Metrics through the real app: uvicorn with two workers (the image's src.main:app, the real
model, a real database) writing into one PROMETHEUS_MULTIPROC_DIR, and the metrics process
(src.metrics.server) serving them in one scrape. Each test reads what changed in the scrape
across requests it sent (the module shares one server; its last test kills a worker)."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import LiteralString

import httpx2
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from psycopg import sql

from tests.conftest import Database, Prefetched
from tests.support.database import migrated_and_seeded
from tests.support.docs_server import serving
from tests.support.embeddings import readyz_after_loading
from tests.support.fake_hub import PUBLIC_REPO
from tests.support.metrics import (
    Samples,
    label_values,
    metrics_process,
    scrape,
    summary,
    total,
)
from tests.support.postgres import PostgresCluster
from tests.support.runners import BACKEND_DIR

REQUESTS = "nica_http_requests_total"
DURATION = "nica_http_request_duration_seconds"
EMBEDDINGS = {"route": "/v1/embeddings", "method": "POST", "status": "200"}
COLLECTION = "metrics"  # made by the fixture
MAX_BODY = 20000


@dataclass(frozen=True)
class Served:
    base: str  # the backend (uvicorn, two workers)
    metrics: str  # the metrics process
    metrics_dir: Path
    database: Database
    at_start: Samples  # the scrape as the metrics process started (uvicorn's start counted)

    def embed(self, texts: list[str]) -> httpx2.Response:
        """POST /v1/embeddings on a connection of its own (the kernel picks the worker)."""
        with httpx2.Client(base_url=self.base, timeout=30) as client:
            return client.post("/v1/embeddings", json={"input": texts, "model": PUBLIC_REPO})

    def get(self, path: str, **params: str | int) -> httpx2.Response:
        with httpx2.Client(base_url=self.base, timeout=30) as client:
            return client.get(path, params=params)

    def sql(self, statement: LiteralString) -> None:
        """A statement as the cluster's superuser."""
        self.database.cluster.execute(sql.SQL(statement), self.database.name)


@pytest.fixture(scope="module")
def served(
    pg_cluster: PostgresCluster,
    app_password_file: Path,
    prefetched: Prefetched,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    name = pg_cluster.create_database()
    database = Database(name, pg_cluster.app_url(name), app_password_file, pg_cluster)
    migrated_and_seeded(database.settings(prefetched.hf_home))
    pg_cluster.query("INSERT INTO collections (name) VALUES ('metrics') RETURNING id", name)
    tmp = tmp_path_factory.mktemp("metrics")
    metrics_dir = tmp / "multiproc"
    metrics_dir.mkdir()
    environ = {
        "DATABASE_URL": database.url,
        "DATABASE_PASSWORD_FILE": str(database.password_file),
        "HF_MODEL_REPOS": PUBLIC_REPO,
        "TMPDIR": str(tmp),  # the workers' readiness notes in a folder of this module's own
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "MAX_REQUEST_BODY_BYTES": str(MAX_BODY),
        "NICA_RELEASE": "r-metrics-test",
        "NICA_SLOT": "green",
    }
    with serving(prefetched.hf_home, environ=environ, workers=2, timeout=60) as base:
        with httpx2.Client(base_url=base, timeout=30) as client:
            readyz_after_loading(client)
            deadline = time.monotonic() + 60
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, client.get("/readyz").text
                time.sleep(0.1)
        with metrics_process(metrics_dir, base, environ) as metrics:
            yield Served(base, metrics, metrics_dir, database, scrape(metrics))


# prometheus_client's merge of multiprocess files (not typed there).
merge: Callable[[list[str]], Iterable[Metric]] = MultiProcessCollector.merge


def per_worker(metrics_dir: Path, name: str, labels: dict[str, str]) -> dict[int, float]:
    """Each worker's own count of `name` with `labels`, read from its own file only."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        samples: Samples = {}
        for family in merge([str(path)]):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        counts[int(path.stem.split("_")[1])] = total(samples, name, **labels)
    return counts


def worker_pids(samples: Samples) -> set[str]:
    return label_values(samples, "nica_worker_start_time_seconds", "pid")


def test_both_workers_counts_are_in_one_scrape(served: Served) -> None:
    before = scrape(served.metrics)
    own_before = per_worker(served.metrics_dir, REQUESTS, EMBEDDINGS)
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        # Until both workers have served some (each request on a connection of its own).
        while sent < 400:
            answers = list(pool.map(lambda i: served.embed([f"text {i}"]), range(sent, sent + 16)))
            assert [a.status_code for a in answers] == [200] * 16, answers[0].text
            sent += 16
            own = per_worker(served.metrics_dir, REQUESTS, EMBEDDINGS)
            served_by = [pid for pid, n in own.items() if n > own_before.get(pid, 0)]
            if len(served_by) == 2:
                break
    after = scrape(served.metrics)
    own = per_worker(served.metrics_dir, REQUESTS, EMBEDDINGS)
    each = {pid: own[pid] - own_before.get(pid, 0) for pid in own}
    assert len([n for n in each.values() if n > 0]) == 2, f"both workers served: {each}"
    assert total(after, REQUESTS, **EMBEDDINGS) - total(before, REQUESTS, **EMBEDDINGS) == sent, (
        f"one scrape counts all {sent} requests, each worker's part ({each}) included"
    )
    assert len(worker_pids(after)) == 2, f"two live workers in the scrape: {worker_pids(after)}"


def test_requests_are_counted_by_route_template_method_and_status(served: Served) -> None:
    before = scrape(served.metrics)
    secret = "query-words-that-must-not-become-a-label"
    assert served.get("/v1/search", q=secret, k=1).status_code == 200
    assert served.get(f"/v1/models/{PUBLIC_REPO}").status_code == 200
    assert served.get("/v1/search", q=secret, k=99).status_code == 422
    assert served.get("/no/such/path/" + secret).status_code == 404
    with httpx2.Client(base_url=served.base, timeout=30) as client:
        too_big = client.post("/v1/embeddings", content=b"x" * (MAX_BODY + 1))
        odd_method = client.request("BREW", "/v1/collections")
    assert too_big.status_code == 413
    assert odd_method.status_code == 405
    after = scrape(served.metrics)

    def added(**labels: str) -> float:
        return total(after, REQUESTS, **labels) - total(before, REQUESTS, **labels)

    assert added(route="/v1/search", method="GET", status="200") == 1
    assert added(route="/v1/models/{model:path}", method="GET", status="200") == 1
    assert added(route="/v1/search", method="GET", status="422") == 1
    assert added(route="unmatched", method="GET", status="404") == 1
    assert added(route="/v1/embeddings", method="POST", status="413") == 1
    assert added(route="/v1/collections", method="other", status="405") == 1
    labels = {value for (_, pairs) in after for _, value in pairs}
    assert not [value for value in labels if secret in value or PUBLIC_REPO + "/" in value], (
        "no raw path or query in any label"
    )


def test_each_request_is_timed_with_the_same_labels(served: Served) -> None:
    before = scrape(served.metrics)
    started = time.perf_counter()
    assert served.embed(["one", "two"]).status_code == 200
    elapsed = time.perf_counter() - started
    after = scrape(served.metrics)
    count = total(after, DURATION + "_count", **EMBEDDINGS) - total(
        before, DURATION + "_count", **EMBEDDINGS
    )
    seconds = total(after, DURATION + "_sum", **EMBEDDINGS) - total(
        before, DURATION + "_sum", **EMBEDDINGS
    )
    assert count == 1
    assert 0 < seconds <= elapsed, f"timed {seconds:.4f} s, the client saw {elapsed:.4f} s"


def test_health_probes_are_not_traffic(served: Served) -> None:
    before = scrape(served.metrics)
    for _ in range(5):
        assert served.get("/healthz").status_code == 200
        assert served.get("/readyz").status_code == 200
    after = scrape(served.metrics)
    assert total(after, REQUESTS) == total(before, REQUESTS), "health probes counted"
    routes = label_values(after, REQUESTS, "route")
    assert not routes & {"/healthz", "/readyz"}, routes


def test_embedding_stages_are_measured(served: Served) -> None:
    model = {"model": PUBLIC_REPO}
    before = scrape(served.metrics)
    answer = served.embed(["a first text", "a second, longer text to embed", "third"])
    assert answer.status_code == 200, answer.text
    tokens = answer.json()["usage"]["total_tokens"]
    after = scrape(served.metrics)

    def added(name: str) -> float:
        return total(after, name, **model) - total(before, name, **model)

    assert (
        added("nica_embeddings_request_inputs_count"),
        added("nica_embeddings_request_inputs_sum"),
    ) == (1, 3)
    assert added("nica_embeddings_request_tokens_sum") == tokens
    assert added("nica_embeddings_tokenization_seconds_count") == 1
    assert added("nica_embeddings_queue_wait_seconds_count") == 1
    assert added("nica_embeddings_inference_seconds_count") == 1
    assert added("nica_embeddings_inference_seconds_sum") > 0
    assert (added("nica_embeddings_batch_size_sum"), added("nica_embeddings_batch_tokens_sum")) == (
        3,
        tokens,
    )
    assert ("nica_embeddings_queue_depth", (("model", PUBLIC_REPO),)) in after
    assert total(after, "nica_embeddings_queue_depth", **model) == 0, "nothing queued at rest"


def test_the_search_statement_is_timed(served: Served) -> None:
    before = scrape(served.metrics)
    assert served.get("/v1/search", q="welcome", k=3).status_code == 200
    after = scrape(served.metrics)
    name = "nica_search_statement_duration_seconds"
    assert total(after, name + "_count") - total(before, name + "_count") == 1
    assert total(after, name + "_sum") > total(before, name + "_sum")


def test_documents_per_collection_are_read_from_the_database(served: Served) -> None:
    for index in range(2):
        answer = httpx2.post(
            served.base + "/v1/documents",
            json={"collection": COLLECTION, "text": f"metrics document {index}"},
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
    deadline = time.monotonic() + 10  # the metrics process reads them every second here
    while (documents := scrape(served.metrics)).get(
        ("nica_documents", (("collection", COLLECTION),))
    ) != 2:
        assert time.monotonic() < deadline, {
            k: v for k, v in documents.items() if "documents" in k[0]
        }
        time.sleep(0.2)
    assert documents[("nica_documents", (("collection", "default"),))] == 3, "the seed's three"


def test_each_workers_memory_and_cpu_are_reported(served: Served) -> None:
    samples = scrape(served.metrics)
    pids = worker_pids(samples)
    assert len(pids) == 2, pids
    for pid in pids:
        memory = samples[("process_resident_memory_bytes", (("pid", pid),))]
        cpu = samples[("process_cpu_seconds_total", (("pid", pid),))]
        assert memory > 100e6, f"worker {pid} holds the model: {memory / 1e6:.0f} MB resident"
        assert cpu > 0.5, f"worker {pid} loaded a model and served: {cpu} s of CPU"


def test_the_release_slot_and_readiness_are_reported(served: Served) -> None:
    samples = scrape(served.metrics)
    info = ("nica_release_info", (("release", "r-metrics-test"), ("slot", "green")))
    assert samples.get(info) == 1, [k for k in samples if k[0].startswith("nica_release")]
    assert samples[("nica_ready", ())] == 1


def test_summary_of_the_last_minutes_matches_the_scrape(served: Served) -> None:
    served.sql("REVOKE SELECT ON documents FROM app")  # GET /v1/search answers 503 meanwhile
    try:
        errors = [served.get("/v1/search", q="x", k=1).status_code for _ in range(3)]
    finally:
        served.sql("GRANT SELECT ON documents TO app")
    assert errors == [503] * 3
    assert served.get("/v1/search", q="x", k=99).status_code == 422, "a client error: not 5xx"
    assert served.embed(["timed"]).status_code == 200
    samples = scrape(served.metrics)
    figures = summary(served.metrics)
    # Since the metrics process started, its first snapshot: less than five minutes ago.
    requests = total(samples, REQUESTS) - total(served.at_start, REQUESTS)
    five_xx = sum(
        total(samples, REQUESTS, status=status) - total(served.at_start, REQUESTS, status=status)
        for status in label_values(samples, REQUESTS, "status")
        if status.startswith("5")
    )
    assert (figures["requests"], figures["errors"]) == (requests, five_xx), figures
    assert figures["error_ratio"] == round(five_xx / requests, 4)
    assert 0 < figures["window_seconds"] < 300
    window = figures["window_seconds"]  # rounded to 0.1 s
    assert (
        requests / (window + 0.05) <= figures["requests_per_second"] <= requests / (window - 0.05)
    )
    assert 0 < figures["latency_p50_seconds"] <= figures["latency_p95_seconds"] < 10
    assert figures["queue_depth"] == 0 and figures["queue_depth_mean"] >= 0
    assert (figures["release"], figures["slot"], figures["ready"]) == (
        "r-metrics-test",
        "green",
        True,
    )


def test_the_documented_metrics_are_the_ones_served(served: Served) -> None:
    docs = (BACKEND_DIR.parent / "docs" / "observability.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_]+)`", docs, re.MULTILINE))
    served_names = {re.sub(r"_(bucket|count|sum)$", "", name) for name, _ in scrape(served.metrics)}
    assert served_names == documented, (
        f"served, not documented: {served_names - documented}; "
        f"documented, not served: {documented - served_names}"
    )


def test_a_worker_that_dies_is_marked_dead_and_its_counts_stay(served: Served) -> None:
    before = scrape(served.metrics)
    victim = sorted(worker_pids(before))[0]
    os.kill(int(victim), signal.SIGKILL)  # uvicorn's supervisor starts another
    deadline = time.monotonic() + 60
    while victim in worker_pids(after := scrape(served.metrics)) or len(worker_pids(after)) < 2:
        assert time.monotonic() < deadline, f"worker {victim} still listed: {worker_pids(after)}"
        time.sleep(0.2)
    assert ("process_resident_memory_bytes", (("pid", victim),)) not in after
    assert total(after, REQUESTS) == total(before, REQUESTS), "its counts stay in the sums"
    assert not list(served.metrics_dir.glob(f"gauge_live*_{victim}.db")), "its live gauges removed"
