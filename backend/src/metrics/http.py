"""ASGI middleware: each HTTP request counted and timed by route template, method and status.

The route is the template the router matched (`/v1/collections/{name}`), never the raw path or
the query; a request no route matches is `unmatched`, a method outside METHODS `other`. Health
probes (/healthz, /readyz) are not traffic and are not recorded. A request whose handler raised
is recorded as 500 (what the server then answers), one whose client went away as the app
answered it (499 for POST /v1/embeddings).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.metrics.instruments import Metrics

NOT_TRAFFIC = frozenset({"/healthz", "/readyz"})
UNMATCHED = "unmatched"
# A client may send any token as its method: others are counted as "other", not as themselves.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes  # every route, to name requests answered before routing (413)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except Exception:
            status = 500  # Starlette's ServerErrorMiddleware, outside this one, answers it
            raise
        finally:
            if status:
                route = self._route(scope)
                if route not in NOT_TRAFFIC:
                    seconds = time.perf_counter() - started
                    method = scope["method"] if scope["method"] in METHODS else "other"
                    self.metrics.request(route, method, status, seconds)

    def _route(self, scope: Scope) -> str:
        """The matched route's template (the router notes it in the scope); requests answered
        before routing are matched here."""
        route = scope.get("route")
        if route is None:
            route = next(
                (
                    candidate
                    for candidate in self.routes
                    if isinstance(getattr(candidate, "path", None), str)
                    and candidate.matches(scope)[0] is not Match.NONE
                ),
                None,
            )
        path = getattr(route, "path", None)
        return path if isinstance(path, str) and path else UNMATCHED
