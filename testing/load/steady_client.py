#!/usr/bin/env python3
"""A steady, bounded client for redeploy tests and benchmarks (standard library only).

It sends a mix of POST /v1/embeddings and GET /v1/search requests to one base URL from
a few threads, each request on a new connection (what the proxy sees from most
clients and load balancers), until a stop file appears, or the request or time budget
is spent. It then writes one JSON object: requests sent, ok, failed (with the first few
reasons), how many of the failures were wrong answers, and the longest stretch with no
successful response.

    steady_client.py --url http://127.0.0.1:8000 --model ORG/NAME --out result.json \
        --stop-file /run/steady.stop [--threads 2] [--max-requests 20000] [--max-seconds 900] \
        [--api-key-file FILE] [--ca-file CA.pem [--server-name NAME]] [--dimension 384]

A request counts as ok only when its answer is right, not merely a 200 with JSON:
- an embedding: one vector of --dimension finite numbers with an L2 norm of 1 (+-0.001),
  for the model asked;
- a search: a list of at least --min-hits hits, each with an id, a title, a text and a
  finite score in [-1, 1], best first.

The API key comes from --api-key-file (the file's content, stripped) or the environment
variable NICA_API_KEY, never from the command line (which `ps` shows to every user); it
is sent as `Authorization: Bearer <key>`. An https:// URL is verified against --ca-file
(default: the system's CAs); --server-name checks the certificate for that name while
connecting to the URL's address.

Bounded on purpose: it only talks to the URL given (a test host's own port) and stops
by itself. Exit status 0 once the result is written, whatever it holds; 2 (one line on
stderr) when the key or CA file cannot be read.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

SENTENCES = (
    "The cat sits on the mat.",
    "A redeploy must not drop a request.",
    "PostgreSQL stores the documents and their embeddings.",
    "The proxy switches to the new release once it is ready.",
)
KEY_VARIABLE = "NICA_API_KEY"
NORM_TOLERANCE = 1e-3
SCORE_TOLERANCE = 1e-4  # cosine similarity of float32 vectors may pass 1 by rounding


class WrongAnswerError(ValueError):
    """A 200 whose body is not the answer asked for."""


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    ok: int = 0
    failed: int = 0
    wrong_answers: int = 0
    reasons: list[str] = field(default_factory=list)
    last_success: float = 0.0
    longest_gap: float = 0.0
    started: float = 0.0

    def record(self, success: bool, reason: str = "", wrong: bool = False) -> None:
        now = time.monotonic()
        with self.lock:
            self.sent += 1
            if success:
                self.ok += 1
                self.longest_gap = max(self.longest_gap, now - self.last_success)
                self.last_success = now
            else:
                self.failed += 1
                self.wrong_answers += wrong
                if len(self.reasons) < 20:
                    self.reasons.append(f"{time.monotonic() - self.started:.2f}s {reason}")


@dataclass(frozen=True)
class Target:
    """Where and how to connect, and what a right answer is."""

    url: urllib.parse.SplitResult
    model: str
    headers: dict[str, str]
    tls: ssl.SSLContext | None
    server_name: str | None
    dimension: int
    min_hits: int

    def connection(self) -> http.client.HTTPConnection:
        host = self.url.hostname or "127.0.0.1"
        if self.tls is None:
            return http.client.HTTPConnection(host, self.url.port or 80, timeout=30)
        return NamedHTTPSConnection(
            host, self.url.port or 443, self.tls, self.server_name or host, timeout=30
        )


class NamedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to `address`, the certificate checked for `server_name` (also the SNI)."""

    def __init__(
        self, address: str, port: int, tls: ssl.SSLContext, server_name: str, timeout: float
    ) -> None:
        super().__init__(server_name, port, context=tls, timeout=timeout)
        self.address = address
        self.tls = tls

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)


def check_embedding(answer: Any, target: Target) -> None:
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], dict):
        raise WrongAnswerError("embedding answer: data is not a list of one embedding")
    if answer.get("model") != target.model:
        raise WrongAnswerError(f"embedding answer: model is {answer.get('model')!r}")
    vector = data[0].get("embedding")
    if not isinstance(vector, list) or len(vector) != target.dimension:
        size = len(vector) if isinstance(vector, list) else type(vector).__name__
        raise WrongAnswerError(f"embedding has {size} values, expected {target.dimension}")
    if not all(_is_finite(value) for value in vector):
        raise WrongAnswerError("embedding has a value that is not a finite number")
    norm = math.sqrt(sum(value * value for value in vector))
    if abs(norm - 1.0) > NORM_TOLERANCE:
        raise WrongAnswerError(f"embedding has norm {norm:.4f}, expected 1")


def check_search(answer: Any, target: Target) -> None:
    hits = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(hits, list):
        raise WrongAnswerError("search answer: data is not a list")
    if len(hits) < target.min_hits:
        raise WrongAnswerError(
            f"search found {len(hits)} hits, expected at least {target.min_hits}"
        )
    scores: list[float] = []
    for index, hit in enumerate(hits):
        if not (
            isinstance(hit, dict)
            and isinstance(hit.get("id"), int)
            and isinstance(hit.get("title"), str)
            and isinstance(hit.get("text"), str)
        ):
            raise WrongAnswerError(f"search hit {index} lacks an id, title or text")
        score = hit.get("score")
        if not isinstance(score, int | float) or not _is_finite(score):
            raise WrongAnswerError(f"search hit {index} has score {score!r}, not a number")
        if abs(score) > 1 + SCORE_TOLERANCE:
            raise WrongAnswerError(f"search hit {index} has score {score!r}, not in [-1, 1]")
        scores.append(score)
    if scores != sorted(scores, reverse=True):
        raise WrongAnswerError("search hits are not best first")


def _is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def one_request(target: Target, n: int) -> tuple[bool, str, bool]:
    """(ok, reason, wrong answer) of the n-th request."""
    connection = target.connection()
    headers = {**target.headers, "Connection": "close"}
    try:
        if n % 4 == 3:
            query = urllib.parse.urlencode({"q": SENTENCES[n % len(SENTENCES)], "k": 3})
            connection.request("GET", f"/v1/search?{query}", headers=headers)
            check = check_search
        else:
            body = json.dumps({"input": SENTENCES[n % len(SENTENCES)], "model": target.model})
            headers["Content-Type"] = "application/json"
            connection.request("POST", "/v1/embeddings", body=body, headers=headers)
            check = check_embedding
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            return False, f"HTTP {response.status} {payload[:120]!r}", False
        try:
            check(json.loads(payload), target)
        except (ValueError, AttributeError) as error:  # WrongAnswerError, or not JSON at all
            return False, f"wrong answer: {error}", True
        return True, "", False
    except (OSError, http.client.HTTPException) as error:
        return False, f"{type(error).__name__}: {error}", False
    finally:
        connection.close()


def worker(
    args: argparse.Namespace, target: Target, tally: Tally, deadline: float, index: int
) -> None:
    n = index
    while time.monotonic() < deadline and not os.path.exists(args.stop_file):
        with tally.lock:
            if tally.sent >= args.max_requests:
                return
        success, reason, wrong = one_request(target, n)
        tally.record(success, reason, wrong)
        n += args.threads
        time.sleep(args.pause)


def api_key(args: argparse.Namespace) -> str | None:
    """From --api-key-file, else $NICA_API_KEY, else none."""
    if args.api_key_file:
        with open(args.api_key_file, encoding="utf-8") as handle:
            key = handle.read().strip()
        if not key:
            raise ValueError(f"--api-key-file: {args.api_key_file} is empty")
        return key
    return os.environ.get(KEY_VARIABLE, "").strip() or None


def make_target(args: argparse.Namespace) -> Target:
    url = urllib.parse.urlsplit(args.url)
    if url.scheme not in ("http", "https"):
        raise ValueError(f"--url must start with http:// or https://, got {args.url!r}")
    tls = None
    if url.scheme == "https":
        tls = ssl.create_default_context(cafile=args.ca_file)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
    key = api_key(args)
    return Target(
        url=url,
        model=args.model,
        headers={"Authorization": f"Bearer {key}"} if key else {},
        tls=tls,
        server_name=args.server_name,
        dimension=args.dimension,
        min_hits=args.min_hits,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--pause", type=float, default=0.02, help="seconds between a thread's requests"
    )
    parser.add_argument("--max-requests", type=int, default=20000)
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument(
        "--api-key-file", help=f"file holding the API key (else ${KEY_VARIABLE}, else none)"
    )
    parser.add_argument("--ca-file", help="CA certificate(s), PEM, for an https:// URL")
    parser.add_argument("--server-name", help="the name the certificate must be for")
    parser.add_argument("--dimension", type=int, default=384, help="of each embedding")
    parser.add_argument("--min-hits", type=int, default=1, help="of each search")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        target = make_target(args)
    except (OSError, ValueError, ssl.SSLError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    tally = Tally()
    tally.started = tally.last_success = time.monotonic()
    deadline = tally.started + args.max_seconds
    threads = [
        threading.Thread(target=worker, args=(args, target, tally, deadline, i), daemon=True)
        for i in range(args.threads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ended = time.monotonic()
    # A stretch still open at the end counts too.
    gap = max(tally.longest_gap, ended - tally.last_success)
    result = {
        "sent": tally.sent,
        "ok": tally.ok,
        "failed": tally.failed,
        "wrong_answers": tally.wrong_answers,
        "failures": tally.reasons,
        "longest_gap_s": round(gap, 3),
        "seconds": round(ended - tally.started, 2),
        "stopped_by": "stop file" if os.path.exists(args.stop_file) else "budget",
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
