"""A bounded HTTP load on 127.0.0.1: N clients, each its own keep-alive connection.

Each client sends one request at a time and waits for the answer (a closed loop, as a
service's callers do), until the block's request count or time budget is spent. Only
loopback ports are ever used.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .stats import Block

# (method, path, body or None) for the i-th request of a block
Request = tuple[str, str, bytes | None]


@dataclass
class _Tally:
    lock: threading.Lock
    latencies: list[float]
    failed: int = 0
    first_error: str = ""


def run_block(
    port: int,
    clients: int,
    make_request: Callable[[int], Request],
    max_requests: int,
    max_seconds: float,
    check: Callable[[bytes], bool] | None = None,
) -> Block:
    """One block: each success's latency, the failures (and the first error), the wall time."""
    counter = itertools.count()
    tally = _Tally(threading.Lock(), [])
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < deadline:
            index = next(counter)
            if index >= max_requests:
                break
            method, path, body = make_request(index)
            headers = {"Content-Type": "application/json"} if body is not None else {}
            started = time.perf_counter()
            error = ""
            try:
                connection.request(method, path, body=body, headers=headers)
                answer = connection.getresponse()
                payload = answer.read()
                if answer.status != 200:
                    error = f"HTTP {answer.status}: {payload[:200]!r}"
                elif check is not None and not check(payload):
                    error = f"unexpected answer: {payload[:200]!r}"
            except (OSError, http.client.HTTPException) as exc:
                error = f"{type(exc).__name__}: {exc}"
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed = time.perf_counter() - started
            with tally.lock:
                if error:
                    tally.failed += 1
                    tally.first_error = tally.first_error or error
                else:
                    tally.latencies.append(elapsed)
        connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return Block(tuple(tally.latencies), tally.failed, wall, tally.first_error)


def embeddings_request(model: str, sentences: Sequence[str]) -> Callable[[int], Request]:
    """POST /v1/embeddings of one sentence, the i-th of `sentences` (cycling), as floats."""

    def make(index: int) -> Request:
        body = {"model": model, "input": [sentences[index % len(sentences)]]}
        return "POST", "/v1/embeddings", json.dumps(body).encode()

    return make


def has_one_embedding(payload: bytes) -> bool:
    data = json.loads(payload).get("data", [])
    return len(data) == 1 and len(data[0].get("embedding", [])) > 0
