"""Dynamic batching (src.embeddings.batching) with the real all-MiniLM-L6-v2 encoder, on both
runtimes (the tests that take `any_encoder` run for the NumPy BERT and ONNX Runtime): results
in each request's order, errors kept to their request, the bounded wait, cancelled requests,
and a client that disconnects from the real server."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import numpy as np
import pytest
from anyio import CapacityLimiter
from tokenizers import Encoding

from src.app import create_app
from src.embeddings import Encoded, Encoder
from src.embeddings.batching import Batcher, BatchLimits, passes
from src.embeddings.functional import F32
from tests.conftest import Database, Prefetched
from tests.support.embeddings import cached_load, readyz_after_loading
from tests.support.fake_hub import PUBLIC_REPO
from tests.support.server import serving

POISON = "this text makes the forward pass fail"
REQUESTS = [
    ["a short one"],
    ["The quick brown fox jumps over the lazy dog near the river bank, twice over."],
    ["two texts", "in one request, the second one a good deal longer than the first"],
    ["x"],
    ["Dynamic batching coalesces concurrent requests into one forward pass."] * 3,
]


class SpyEncoder(Encoder):
    """The real encoder's tokenizer and weights; records the token ids of each forward pass,
    fails a pass that holds POISON's tokens, and (if `hold` is given) holds every pass until
    it is set."""

    def __init__(self, inner: Encoder, hold: threading.Event | None = None) -> None:
        vars(self).update(vars(inner))
        self.poison = inner.tokenize([POISON])[0].ids
        self.hold = hold
        self.started = threading.Event()
        self.seen: list[list[list[int]]] = []

    def forward(self, encodings: Sequence[Encoding]) -> F32:
        self.seen.append([list(encoding.ids) for encoding in encodings])
        self.started.set()
        if self.hold is not None:
            self.hold.wait(timeout=30)
        if any(encoding.ids == self.poison for encoding in encodings):
            raise RuntimeError("poisoned batch")
        return super().forward(encodings)

    def saw(self, text: str) -> bool:
        ids = self.tokenize([text])[0].ids
        return any(ids in batch for batch in list(self.seen))

    def wait_to_see(self, text: str, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while not self.saw(text):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


def limits(wait_s: float = 0.05, tokens: int = 8192) -> BatchLimits:
    return BatchLimits(max_wait_s=wait_s, max_batch_tokens=tokens)


async def embed_all(batcher: Batcher, requests: list[list[str]]) -> list[Encoded]:
    try:
        return list(await asyncio.gather(*(batcher.embed(texts) for texts in requests)))
    finally:
        await batcher.close()


def test_concurrent_requests_get_their_own_vectors_in_their_order(
    any_encoder: Encoder,
) -> None:
    batcher = Batcher(any_encoder, limits(), CapacityLimiter(1))
    results = asyncio.run(embed_all(batcher, REQUESTS))
    for texts, result in zip(REQUESTS, results, strict=True):
        alone = any_encoder.encode(texts)
        assert result.token_counts == alone.token_counts, f"token counts of {texts}"
        assert np.allclose(result.vectors, alone.vectors, atol=1e-6), (
            f"{texts}: expected the vectors encode() gives for them alone, in that order"
        )


def test_concurrent_requests_share_forward_passes(any_encoder: Encoder) -> None:
    spy = SpyEncoder(any_encoder)
    asyncio.run(embed_all(Batcher(spy, limits(), CapacityLimiter(1)), REQUESTS))
    assert len(spy.seen) == 1, f"expected {len(REQUESTS)} requests in one pass, got {spy.seen}"


def test_a_failing_request_fails_alone(any_encoder: Encoder) -> None:
    spy = SpyEncoder(any_encoder)
    batcher = Batcher(spy, limits(), CapacityLimiter(1))

    async def run() -> list[Encoded | BaseException]:
        try:
            results = await asyncio.gather(
                batcher.embed(["fine"]),
                batcher.embed(["fine too", POISON]),
                batcher.embed(["also fine"]),
                return_exceptions=True,
            )
            return list(results)
        finally:
            await batcher.close()

    first, poisoned, last = asyncio.run(run())
    assert isinstance(poisoned, RuntimeError), f"the poisoned request should fail: {poisoned}"
    for texts, result in ((["fine"], first), (["also fine"], last)):
        assert isinstance(result, Encoded), f"{texts} should succeed, got {result!r}"
        assert np.allclose(result.vectors, any_encoder.encode(texts).vectors, atol=1e-6)


def test_a_lone_request_waits_no_longer_than_the_bound(any_encoder: Encoder) -> None:
    wait_s = 1.0
    batcher = Batcher(any_encoder, limits(wait_s=wait_s), CapacityLimiter(1))
    started = time.monotonic()
    asyncio.run(embed_all(batcher, [["alone"]]))
    elapsed = time.monotonic() - started
    assert wait_s * 0.9 <= elapsed < wait_s + 1.0, (
        f"expected about {wait_s} s (the wait, then one short pass), took {elapsed:.3f} s"
    )


def test_under_steady_arrivals_the_oldest_request_still_waits_no_longer_than_the_bound(
    any_encoder: Encoder,
) -> None:
    # A request every 0.1 s, each within the 0.3 s wait of the one before: the timer runs from
    # the oldest queued request, so the first is answered after about 0.3 s plus a pass, not
    # once the arrivals stop (2 s later).
    wait_s, gap_s, arrivals = 0.3, 0.1, 20
    batcher = Batcher(any_encoder, limits(wait_s=wait_s), CapacityLimiter(1))
    answered: dict[int, float] = {}

    async def one(index: int, started: float) -> None:
        await batcher.embed([f"steady arrival number {index}"])
        answered[index] = time.monotonic() - started

    async def run() -> None:
        tasks = []
        for index in range(arrivals):
            tasks.append(asyncio.create_task(one(index, time.monotonic())))
            await asyncio.sleep(gap_s)
        await asyncio.gather(*tasks)
        await batcher.close()

    asyncio.run(run())
    first = answered[0]
    assert first < wait_s + 0.6, (
        f"the first request waited {first:.2f} s under steady arrivals, with a {wait_s} s bound"
    )


def test_a_request_arriving_within_the_wait_joins_the_batch(any_encoder: Encoder) -> None:
    spy = SpyEncoder(any_encoder)
    batcher = Batcher(spy, limits(wait_s=0.3), CapacityLimiter(1))

    async def run() -> None:
        first = asyncio.create_task(batcher.embed(["first"]))
        await asyncio.sleep(0.1)
        await asyncio.gather(first, batcher.embed(["second, 0.1 s later"]))
        await batcher.close()

    asyncio.run(run())
    assert len(spy.seen) == 1, f"expected one shared pass, got {len(spy.seen)}"


def test_a_full_batch_does_not_wait(any_encoder: Encoder) -> None:
    spy = SpyEncoder(any_encoder)
    long_wait = 5.0
    batcher = Batcher(spy, limits(wait_s=long_wait, tokens=8), CapacityLimiter(1))
    started = time.monotonic()
    asyncio.run(embed_all(batcher, [["enough tokens to fill the batch on their own"]]))
    elapsed = time.monotonic() - started
    assert elapsed < long_wait / 2, f"a batch of max_batch_tokens should go at once: {elapsed}"


def test_passes_hold_at_most_max_tokens_padded_and_group_by_length(
    any_encoder: Encoder,
) -> None:
    texts = ["short"] * 4 + ["a much longer text than the others, with many more words in it"] * 2
    encodings = any_encoder.tokenize(texts)
    long_tokens, short_tokens = len(encodings[-1].ids), len(encodings[0].ids)
    cut = passes(encodings, max_tokens=2 * long_tokens)
    assert cut == [[4, 5], [0, 1, 2, 3]], f"long texts together, then short ones; got {cut}"
    assert all(len(rows) * len(encodings[rows[0]].ids) <= 2 * long_tokens for rows in cut)
    assert short_tokens * 4 <= 2 * long_tokens


def passes_running_together(slots: int, any_encoder: Encoder) -> int:
    """Two requests, the second queued while the first one's pass is held: how many passes
    were running at once before the hold was lifted."""
    hold = threading.Event()
    spy = SpyEncoder(any_encoder, hold)
    batcher = Batcher(spy, limits(wait_s=0), CapacityLimiter(slots))

    async def run() -> int:
        first = asyncio.create_task(batcher.embed(["the first request"]))
        while not spy.started.is_set():
            await asyncio.sleep(0.01)
        second = asyncio.create_task(batcher.embed(["the second request"]))
        deadline = time.monotonic() + 2
        while len(spy.seen) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        running = len(spy.seen)
        hold.set()
        await asyncio.gather(first, second)
        await batcher.close()
        return running

    return asyncio.run(run())


def test_batches_run_at_once_up_to_the_limiters_slots(any_encoder: Encoder) -> None:
    assert passes_running_together(2, any_encoder) == 2, (
        "with two slots, the second request's batch should run while the first is held"
    )


def test_with_one_slot_the_next_batch_waits_for_the_pass(any_encoder: Encoder) -> None:
    assert passes_running_together(1, any_encoder) == 1, (
        "with one slot, the second request's batch should wait for the held pass"
    )


def test_a_request_cancelled_while_queued_is_never_encoded(any_encoder: Encoder) -> None:
    hold = threading.Event()
    spy = SpyEncoder(any_encoder, hold)
    batcher = Batcher(spy, limits(wait_s=0), CapacityLimiter(1))

    async def run() -> Encoded:
        busy = asyncio.create_task(batcher.embed(["keeps the worker busy"]))
        while not spy.started.is_set():
            await asyncio.sleep(0.01)
        gone = asyncio.create_task(batcher.embed(["its client went away"]))
        after = asyncio.create_task(batcher.embed(["queued after it"]))
        await asyncio.sleep(0.1)  # both tokenized and queued behind the held pass
        gone.cancel()
        hold.set()
        await busy
        result = await after
        await batcher.close()
        return result

    after = asyncio.run(run())
    assert not spy.saw("its client went away"), "a cancelled request went through a pass"
    assert spy.saw("queued after it") and len(after.vectors) == 1, "the next one was served"


def test_a_client_that_disconnects_leaves_the_queue(
    seeded_database: Database, prefetched: Prefetched
) -> None:
    settings = seeded_database.settings(prefetched.hf_home, models=PUBLIC_REPO)
    hold = threading.Event()
    spies: list[SpyEncoder] = []

    def load_spy(path: Path, onnx_file: str | None) -> Encoder:
        spies.append(SpyEncoder(cached_load(path, onnx_file), hold))
        return spies[-1]

    with (
        serving(create_app(settings, load_encoder=load_spy)) as url,
        httpx2.Client(base_url=url, timeout=30) as client,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        readyz_after_loading(client)
        busy = pool.submit(client.post, "/v1/embeddings", json=body("keeps the worker busy"))
        try:
            # (The start-up backfill's pass is held too; this one must be running.)
            assert spies[0].wait_to_see("keeps the worker busy"), "its pass should have started"
            send_and_hang_up(url, body("its client went away"))
            time.sleep(0.3)  # the server sees the connection close
        finally:
            hold.set()
        assert busy.result(timeout=30).status_code == 200
        after = client.post("/v1/embeddings", json=body("served after it"))
    assert after.status_code == 200, after.text
    assert not spies[0].saw("its client went away"), "the gone client's text was encoded"


def body(text: str) -> dict[str, str]:
    return {"input": text, "model": PUBLIC_REPO}


def send_and_hang_up(url: str, payload: dict[str, str]) -> None:
    """POST /v1/embeddings on a raw connection, then close it without reading the answer."""
    parts = urlsplit(url)
    data = httpx2.Request("POST", url + "/v1/embeddings", json=payload).read()
    head = (
        f"POST /v1/embeddings HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=5) as sock:
        sock.sendall(head.encode() + data)
        time.sleep(0.3)  # read, tokenized and queued behind the held pass


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_413_in_the_openai_shape(
    seeded_database: Database, prefetched: Prefetched, declared: bool
) -> None:
    settings = seeded_database.settings(
        prefetched.hf_home, models=PUBLIC_REPO, MAX_REQUEST_BODY_BYTES="1000"
    )
    payload = b'{"model": "' + PUBLIC_REPO.encode() + b'", "input": "' + b"x" * 2000 + b'"}'
    content = payload if declared else iter([payload[:600], payload[600:]])
    with serving(create_app(settings, load_encoder=cached_load)) as url:
        response = httpx2.post(
            url + "/v1/embeddings",
            content=content,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
    assert response.status_code == 413, f"expected 413, got {response.status_code}"
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "request_too_large")
    assert "MAX_REQUEST_BODY_BYTES" in error["message"], error["message"]


def test_under_random_traffic_no_request_is_left_queued(any_encoder: Encoder) -> None:
    """Bursts and lone requests of mixed sizes, some cancelled while queued, two slots and a
    batch budget that leaves requests over for the next batch: every request that was not
    cancelled is answered, with its own vectors, without waiting for a later arrival."""
    rng = random.Random(20261130)  # noqa: S311 (a repeatable test load, not a secret)
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "by", "a", "bank"]
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 40))) for _ in range(30)]
    alone = {text: any_encoder.encode([text]).vectors[0] for text in texts}
    batcher = Batcher(any_encoder, limits(wait_s=0.002, tokens=96), CapacityLimiter(2))

    async def run() -> tuple[int, list[str]]:
        served, problems = 0, []
        for _ in range(40):  # bursts, each followed by silence: nothing arrives to wake a stray
            chosen = rng.choices(texts, k=rng.randint(1, 12))
            tasks = [asyncio.create_task(batcher.embed([text])) for text in chosen]
            await asyncio.sleep(rng.choice([0, 0.001, 0.003]))
            cancelled = {i for i in range(len(tasks)) if rng.random() < 0.15}
            for i in cancelled:
                tasks[i].cancel()
            done, pending = await asyncio.wait(tasks, timeout=5)
            if pending:
                problems.append(f"{len(pending)} of {len(tasks)} requests still waiting after 5 s")
                for task in pending:
                    task.cancel()
            for i, (task, text) in enumerate(zip(tasks, chosen, strict=True)):
                if task in done and not task.cancelled():
                    served += 1
                    if not np.allclose(task.result().vectors[0], alone[text], atol=1e-5):
                        problems.append(f"{text!r} got another text's vector")
                elif i not in cancelled and task in done:
                    problems.append(f"request {i} was cancelled without being cancelled")
            await asyncio.sleep(rng.choice([0, 0.01]))
        await batcher.close()
        return served, problems

    served, problems = asyncio.run(run())
    assert problems == [], problems[:5]
    assert served > 100, f"only {served} requests served"
