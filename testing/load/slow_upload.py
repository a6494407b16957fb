#!/usr/bin/env python3
"""One slow upload across a cut-over: a request the proxy's OLD worker must still forward
to the OLD slot (standard library only; beside steady_client.py, whose checks it uses).

    slow_upload.py --url http://127.0.0.1:8000 --model ORG/NAME --out result.json \
        --switch-file /opt/nica/compose/proxy/live/upstream.conf [--after 45] \
        [--max-seconds 600] [--project nica] [--api-key-file FILE] [--ca-file CA.pem]

It opens one connection and sends the headers of a POST /v1/embeddings and the start of
its body, then one byte of JSON whitespace a second (nginx's client_body_timeout is 10 s)
until the switch file changes (the proxy is pointed at the other slot), then until the
deploy drains the proxy (a `timeout` process in the proxy's container: the cut-over's
wait for the old workers), the old slot's container stops, or --after seconds pass,
whichever comes first, then the rest of the body. Each of these is an event of the
deploy, not a delay, so the outcome does not depend on how busy the machine is.
nginx buffers a request body before it connects upstream, so the worker that
accepted the connection (an old one after the reload) connects to the slot it routed to,
the old one, only then: the cut-over must keep that slot running until its old workers
are done (the drain). Without the drain the old slot stops first, and the request fails.
The result: the status, whether the answer was right (steady_client.check_embedding),
whether the old slot stopped before the body was complete, and the seconds from the switch
to the end of the body. Runs on the host (it asks `docker top` and `docker inspect`).
Exit status 0 once the result is written.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import subprocess
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


def running(container: str) -> bool:
    inspected = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", container],
        capture_output=True,
        text=True,
        check=False,
    )
    return inspected.stdout.strip() == "true"


def draining(proxy: str) -> bool:
    """Whether the cut-over is waiting for the proxy's old workers (roles/cutover's drain
    runs `timeout N sh -c 'while grep ...'` in the proxy's container)."""
    top = subprocess.run(
        ["docker", "top", proxy, "-o", "pid,args"], capture_output=True, text=True, check=False
    )
    commands = [line.split(None, 1)[-1] for line in top.stdout.splitlines()[1:]]
    return any(command.startswith("timeout ") for command in commands)


def upload(args: argparse.Namespace) -> dict[str, object]:
    target = make_target(args)
    head = json.dumps({"model": target.model, "input": "a request sent across the cut-over"})
    start, end = head[:-1].encode(), b"}"
    length = len(start) + PADDING + len(end)
    switch_file = Path(args.switch_file)
    before = read(switch_file)
    routed = re.search(r"backend-(blue|green):8000", before)
    if not routed:
        raise ValueError(f"{switch_file} names no slot")
    old_slot = f"{args.project}-backend-{routed[1]}-1"
    proxy = f"{args.project}-proxy-1"
    conn = target.connection()
    conn.putrequest("POST", "/v1/embeddings")
    for name, value in {**target.headers, "Content-Type": "application/json"}.items():
        conn.putheader(name, value)
    conn.putheader("Content-Length", str(length))
    conn.endheaders()
    conn.send(start)
    began = time.monotonic()
    switched = None
    old_stopped = drained = False
    sent = 0
    while sent < PADDING - 1:
        now = time.monotonic()
        if switched is None and read(switch_file) != before:
            switched = now
        if switched is not None:
            if drained:  # a second into the drain: its wait has begun
                break
            drained = draining(proxy)
            old_stopped = not running(old_slot)
            if old_stopped or now - switched >= args.after:
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
        "old_slot_stopped_first": old_stopped,
        "drained": drained,
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
    parser.add_argument("--after", type=float, default=45, help="most seconds after the switch")
    parser.add_argument("--project", default="nica", help="the compose project (containers)")
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
