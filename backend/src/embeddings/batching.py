"""Dynamic batching: concurrent embedding requests share forward passes.

One Batcher per loaded model, owned by the app (created on first use, closed at shutdown).
A request's texts are tokenized in a worker thread, then queued. One task per model takes
what is queued once the oldest queued request has waited `max_wait_s` for company (requests
that queued during a busy spell have, and go at once) or `max_batch_tokens` tokens are
queued, and once the app's limiter has a free slot: as many batches run at once as it has
slots, whatever the model (src.blas_threads: one per CPU, each pass on one BLAS thread),
and while every slot is busy the queue keeps growing into the next batch. Each batch's
passes run in a worker thread, each request getting its own rows. Within a batch the texts
are sorted by length and cut into passes of at most `max_batch_tokens` padded tokens
(rows x longest), so short texts do not pay for long ones.

- Results: each request gets its texts' vectors in its own order: those Encoder.encode()
  gives for them alone, to float32 rounding (another batch sums in another order).
- Errors: a failed pass is retried request by request, so only the request whose texts fail
  gets the error.
- Cancellation: a request cancelled while queued (its client went away) is dropped before its
  batch is formed; one cancelled mid-pass just discards its rows.
- Metrics (with a BatcherMetrics): each request's tokenization time, inputs and tokens, its
  wait in the queue, the queue's depth, and each batch's forward-pass time, texts and tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio.to_thread
import numpy as np
from anyio import CapacityLimiter
from tokenizers import Encoding

from src.embeddings.encoder import Encoded, Encoder, longest_first
from src.embeddings.functional import F32
from src.metrics.instruments import BatcherMetrics, Metrics


@dataclass(frozen=True)
class BatchLimits:
    max_wait_s: float  # how long a lone request waits for others to join its batch
    max_batch_tokens: int  # tokens per batch taken from the queue, and per forward pass


@dataclass
class _Job:
    encodings: list[Encoding]
    future: asyncio.Future[F32]
    arrived: float  # the event loop's clock when it was queued
    tokens: int = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = sum(len(encoding.ids) for encoding in self.encodings)


class Batcher:
    """Embeds requests of one encoder in shared forward passes (see the module doc)."""

    def __init__(
        self,
        encoder: Encoder,
        limits: BatchLimits,
        limiter: CapacityLimiter,
        metrics: BatcherMetrics | None = None,
    ) -> None:
        self._encoder = encoder
        self._limits = limits
        self._limiter = limiter
        self._metrics = metrics
        self._queue: deque[_Job] = deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()  # running, each holding a limiter slot

    async def embed(self, texts: Sequence[str]) -> Encoded:
        """The texts' vectors and token counts, as Encoder.encode() gives them."""
        encodings = await anyio.to_thread.run_sync(self._tokenize, texts)
        loop = asyncio.get_running_loop()
        job = _Job(encodings, loop.create_future(), loop.time())
        self._queue.append(job)
        self._queue_changed()
        self._arrived.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="embeddings-batcher")
        # Cancelling this await cancels the future: the worker skips or discards the job.
        vectors = await job.future
        return Encoded(vectors, [len(encoding.ids) for encoding in encodings])

    async def close(self) -> None:
        """Stop the worker; requests still queued get CancelledError."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for batch in list(self._batches):  # a pass in a thread finishes; its rows are dropped
            batch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await batch
        while self._queue:
            self._queue.popleft().future.cancel()
        self._queue_changed()

    def _tokenize(self, texts: Sequence[str]) -> list[Encoding]:
        """In a worker thread: the texts' tokens (timed, with the metrics)."""
        if self._metrics is None:
            return self._encoder.tokenize(texts)
        started = time.perf_counter()
        encodings = self._encoder.tokenize(texts)
        tokens = sum(len(encoding.ids) for encoding in encodings)
        self._metrics.tokenized(time.perf_counter() - started, len(texts), tokens)
        return encodings

    def _queue_changed(self) -> None:
        if self._metrics is not None:
            self._metrics.queue_depth.set(len(self._queue))

    async def _run(self) -> None:
        while True:
            # Level-triggered: while a live request is queued the worker never waits for the
            # signal (a request left queued with the event clear would wait for the next one).
            if not self._has_live_jobs():
                self._arrived.clear()
                await self._arrived.wait()
            await self._gather()
            # A free slot first: while every slot is busy, requests keep joining the queue.
            slot = object()
            await self._limiter.acquire_on_behalf_of(slot)
            jobs = self._take()
            if not self._queue:
                self._arrived.clear()
            if not jobs:
                self._limiter.release_on_behalf_of(slot)
                continue
            batch = asyncio.create_task(self._serve_in_slot(jobs, slot), name="embeddings-batch")
            self._batches.add(batch)
            batch.add_done_callback(self._batches.discard)

    async def _serve_in_slot(self, jobs: list[_Job], slot: object) -> None:
        try:
            await self._serve(jobs)
        finally:
            self._limiter.release_on_behalf_of(slot)

    async def _gather(self) -> None:
        """Wait until the oldest queued request has waited max_wait_s, or a batch's worth of
        tokens is queued (requests queued during the previous pass have waited already)."""
        loop = asyncio.get_running_loop()
        while self._queue and self._queued_tokens() < self._limits.max_batch_tokens:
            remaining = self._queue[0].arrived + self._limits.max_wait_s - loop.time()
            if remaining <= 0:
                return
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    def _has_live_jobs(self) -> bool:
        return any(not job.future.done() for job in self._queue)

    def _queued_tokens(self) -> int:
        return sum(job.tokens for job in self._queue if not job.future.done())

    def _take(self) -> list[_Job]:
        """Queued jobs in arrival order up to max_batch_tokens (at least one); cancelled ones
        are dropped here."""
        jobs: list[_Job] = []
        tokens = 0
        now = asyncio.get_running_loop().time()
        while self._queue:
            job = self._queue[0]
            if job.future.done():  # cancelled while queued: its slot goes to the next one
                self._queue.popleft()
                continue
            if jobs and tokens + job.tokens > self._limits.max_batch_tokens:
                break
            jobs.append(self._queue.popleft())
            tokens += job.tokens
            if self._metrics is not None:
                self._metrics.queue_wait.observe(now - job.arrived)
        self._queue_changed()
        return jobs

    async def _serve(self, jobs: list[_Job]) -> None:
        try:
            # The batch holds a slot of the app's limiter already (see _run).
            results = await anyio.to_thread.run_sync(self._forward_jobs, jobs)
        except Exception as error:
            if len(jobs) == 1:
                if not jobs[0].future.done():
                    jobs[0].future.set_exception(error)
                return
            # Retry one request at a time: only the request at fault gets the error.
            for job in jobs:
                if not job.future.done():
                    await self._serve([job])
            return
        for job, vectors in zip(jobs, results, strict=True):
            if not job.future.done():
                job.future.set_result(vectors)

    def _forward_jobs(self, jobs: Sequence[_Job]) -> list[F32]:
        """In a worker thread: the jobs' texts sorted by length, in passes of at most
        max_batch_tokens padded tokens; each job's rows in its own order."""
        started = time.perf_counter()
        encodings = [encoding for job in jobs for encoding in job.encodings]
        vectors = np.zeros((len(encodings), self._encoder.dimension), dtype=np.float32)
        for rows in passes(encodings, self._limits.max_batch_tokens):
            vectors[rows] = self._encoder.forward([encodings[i] for i in rows])
        if self._metrics is not None:
            tokens = sum(job.tokens for job in jobs)
            self._metrics.batch(time.perf_counter() - started, len(encodings), tokens)
        results, start = [], 0
        for job in jobs:
            results.append(vectors[start : start + len(job.encodings)])
            start += len(job.encodings)
        return results


def passes(encodings: Sequence[Encoding], max_tokens: int) -> list[list[int]]:
    """Row indices per forward pass: longest first, each pass at most max_tokens padded tokens
    (rows x its longest row), a text longer than that alone in its pass."""
    result: list[list[int]] = []
    for index in longest_first(encodings):
        # Longest first: a pass's first row is its longest, so its padded size is rows x that.
        if result and (len(result[-1]) + 1) * len(encodings[result[-1][0]].ids) <= max_tokens:
            result[-1].append(index)
        else:
            result.append([index])
    return result


class Batchers:
    """The app's batchers, one per encoder, made on first use (on the event loop); with
    `metrics`, each records under its model's name."""

    def __init__(
        self, limits: BatchLimits, limiter: CapacityLimiter, metrics: Metrics | None = None
    ) -> None:
        self._limits = limits
        self._limiter = limiter
        self._metrics = metrics
        self._batchers: dict[Encoder, Batcher] = {}

    def of(self, encoder: Encoder, model: str) -> Batcher:
        """The batcher of `encoder`, the loaded encoder of the configured model `model`."""
        batcher = self._batchers.get(encoder)
        if batcher is None:
            metrics = None if self._metrics is None else self._metrics.batcher(model)
            batcher = Batcher(encoder, self._limits, self._limiter, metrics)
            self._batchers[encoder] = batcher
        return batcher

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()
        self._batchers.clear()
