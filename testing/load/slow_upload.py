#!/usr/bin/env python3
"""One slow upload across a cut-over: a request the proxy's OLD worker must still forward
to the OLD slot (standard library only; beside steady_client.py, whose checks it uses).

    slow_upload.py --url http://127.0.0.1:8000 --model ORG/NAME --out result.json \
        --switch-file /opt/nica/compose/proxy/live/upstream.conf [--after 10] \
        [--max-seconds 600] [--api-key-file FILE] [--ca-file CA.pem]

It opens one connection and sends the headers of a POST /v1/embeddings and the start of
its body, then one byte of JSON whitespace a second (nginx's client_body_timeout is 10 s)
until the switch file changes (the proxy is pointed at the other slot), then for --after
seconds more, then the rest of the body. nginx buffers a request body before it connects
upstream, so the worker that accepted the connection (an old one after the reload)
connects to the slot it routed to, the old one, only then: the cut-over must keep that
slot accepting connections until its old workers are done (the drain). The result: the
status, whether the answer was right (steady_client.check_embedding), and the seconds
from the switch to the end of the body. Exit status 0 once the result is written.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
from pathlib import Path

from steady_client import WrongAnswerError, check_embedding, make_target

PADDING = 1200  # bytes of whitespace: a byte a second for the longest run it waits out


def read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def upload(args: argparse.Namespace) -> dict[str, object]:
    target = make_target(args)
    head = json.dumps({"model": target.model, "input": "a request sent across the cut-over"})
    start, end = head[:-1].encode(), b"}"
    length = len(start) + PADDING + len(end)
    switch_file = Path(args.switch_file)
    before = read(switch_file)
    conn = target.connection()
    conn.putrequest("POST", "/v1/embeddings")
    for name, value in {**target.headers, "Content-Type": "application/json"}.items():
        conn.putheader(name, value)
    conn.putheader("Content-Length", str(length))
    conn.endheaders()
    conn.send(start)
    began = time.monotonic()
    switched = None
    sent = 0
    while sent < PADDING - 1:
        now = time.monotonic()
        if switched is None and read(switch_file) != before:
            switched = now
        if switched is not None and now - switched >= args.after:
            break
        if now - began > args.max_seconds:
            break
        conn.send(b" ")
        sent += 1
        time.sleep(1)
    conn.send(b" " * (PADDING - sent) + end)
    body_done = time.monotonic()
    response = conn.getresponse()
    answer = response.read()
    result: dict[str, object] = {
        "status": response.status,
        "switched": switched is not None,
        "body_completed_after_switch_s": round(body_done - switched, 1) if switched else None,
        "right_answer": False,
    }
    if response.status == 200:
        try:
            check_embedding(json.loads(answer), target)
            result["right_answer"] = True
        except (ValueError, WrongAnswerError) as error:
            result["reason"] = str(error)[:200]
    else:
        result["reason"] = answer[:200].decode("utf-8", "replace")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--switch-file", required=True, help="changes when the proxy switches")
    parser.add_argument("--after", type=float, default=10, help="seconds sent after the switch")
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--api-key-file")
    parser.add_argument("--ca-file")
    parser.add_argument("--server-name")
    args = parser.parse_args(argv)
    args.dimension, args.min_hits = 384, 1  # what make_target's checks need
    try:
        result = upload(args)
    except (OSError, ValueError, http.client.HTTPException) as error:
        result = {"status": None, "reason": f"{type(error).__name__}: {error}"[:200]}
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
