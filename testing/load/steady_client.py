#!/usr/bin/env python3
"""A steady, bounded client for redeploy tests and benchmarks (standard library only).

It sends a mix of POST /v1/embeddings and GET /v1/search requests to one base URL from
a few threads, each request on a new connection (what the proxy sees from most
clients and load balancers), until a stop file appears, or the request or time budget
is spent. It then writes one JSON object: requests sent, failed (with the first few
reasons), and the longest stretch with no successful response.

    steady_client.py --url http://127.0.0.1:8000 --model ORG/NAME --out result.json \
        --stop-file /run/steady.stop [--threads 2] [--max-requests 20000] [--max-seconds 900]

Bounded on purpose: it only talks to the URL given (a test host's own port) and stops
by itself. Exit status 0 once the result is written, whatever it holds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

SENTENCES = (
    "The cat sits on the mat.",
    "A redeploy must not drop a request.",
    "PostgreSQL stores the documents and their embeddings.",
    "The proxy switches to the new release once it is ready.",
)


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    ok: int = 0
    failed: int = 0
    reasons: list[str] = field(default_factory=list)
    last_success: float = 0.0
    longest_gap: float = 0.0
    started: float = 0.0

    def record(self, success: bool, reason: str = "") -> None:
        now = time.monotonic()
        with self.lock:
            self.sent += 1
            if success:
                self.ok += 1
                self.longest_gap = max(self.longest_gap, now - self.last_success)
                self.last_success = now
            else:
                self.failed += 1
                if len(self.reasons) < 20:
                    self.reasons.append(f"{time.monotonic() - self.started:.2f}s {reason}")


def one_request(base: urllib.parse.SplitResult, model: str, n: int) -> tuple[bool, str]:
    connection = http.client.HTTPConnection(
        base.hostname or "127.0.0.1", base.port or 80, timeout=30
    )
    try:
        if n % 4 == 3:
            query = urllib.parse.urlencode({"q": SENTENCES[n % len(SENTENCES)], "k": 3})
            connection.request("GET", f"/v1/search?{query}", headers={"Connection": "close"})
        else:
            body = json.dumps({"input": SENTENCES[n % len(SENTENCES)], "model": model})
            connection.request(
                "POST",
                "/v1/embeddings",
                body=body,
                headers={"Content-Type": "application/json", "Connection": "close"},
            )
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            return False, f"HTTP {response.status} {payload[:120]!r}"
        json.loads(payload)
        return True, ""
    except (OSError, http.client.HTTPException, ValueError) as error:
        return False, f"{type(error).__name__}: {error}"
    finally:
        connection.close()


def worker(args: argparse.Namespace, tally: Tally, deadline: float, index: int) -> None:
    base = urllib.parse.urlsplit(args.url)
    n = index
    while time.monotonic() < deadline and not os.path.exists(args.stop_file):
        with tally.lock:
            if tally.sent >= args.max_requests:
                return
        success, reason = one_request(base, args.model, n)
        tally.record(success, reason)
        n += args.threads
        time.sleep(args.pause)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    args = parser.parse_args()

    tally = Tally()
    tally.started = tally.last_success = time.monotonic()
    deadline = tally.started + args.max_seconds
    threads = [
        threading.Thread(target=worker, args=(args, tally, deadline, i), daemon=True)
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
