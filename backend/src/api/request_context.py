"""Each request's id (X-Request-ID) and its one access log line, without the query string.

The id is the client's X-Request-ID when it is well-formed (REQUEST_ID: 1-128 of
A-Z a-z 0-9 . _ -; the proxy sends its own $request_id when the client sent none), else a
new one (32 hex digits, as nginx makes them). It comes back as the response's X-Request-ID,
is in the access log line and on the request's trace span (src.telemetry).

The access log line replaces uvicorn's (src.main turns that one off): uvicorn's carries the
query string, and GET /v1/search?q=... is the user's text. This one has the path only:

    src.access: 172.18.0.5 "GET /v1/search" 200 1432 B 25.1 ms id=4f0c... key=ci-reader

(the client address as the backend sees it: behind the proxy, the proxy's; `key` is the
name of the API key that was accepted, "-" when none).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.api.auth import KEY_NAME

HEADER = "X-Request-ID"
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
SCOPE_KEY = "nica.request_id"  # where the id is kept in the ASGI scope
access_logger = logging.getLogger("src.access")


def is_request_id(value: str) -> bool:
    return REQUEST_ID.fullmatch(value) is not None


def request_id(scope: MutableMapping[str, Any]) -> str:
    """This request's id, chosen once: the client's if well-formed, else a new one."""
    chosen = scope.get(SCOPE_KEY)
    if chosen is None:
        sent = _header(scope, b"x-request-id")
        chosen = sent if sent is not None and is_request_id(sent) else uuid.uuid4().hex
        scope[SCOPE_KEY] = chosen
    return str(chosen)


def _header(scope: MutableMapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class RequestContext:
    """ASGI middleware: the request id on the response and one access log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id(scope)
        status = 500  # if the app fails before it answers
        sent_bytes = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent_bytes
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode("ascii")))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                sent_bytes += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            client = scope.get("client")
            access_logger.info(
                '%s "%s %s" %d %d B %.1f ms id=%s key=%s',
                client[0] if client else "-",
                scope.get("method", "-"),
                scope.get("path", "-"),  # never the query string
                status,
                sent_bytes,
                (time.perf_counter() - started) * 1000,
                rid,
                scope.get(KEY_NAME, "-"),
            )


def install(app: FastAPI) -> None:
    """RequestContext around the whole app, outside Starlette's ServerErrorMiddleware, so a
    500 carries the id and is logged too. Call after src.telemetry.instrument: its
    middleware then runs inside this one and finds the id already chosen."""
    build: Callable[[], ASGIApp] = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        return RequestContext(build())

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
