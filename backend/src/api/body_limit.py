"""MAX_REQUEST_BODY_BYTES: a request body larger than that is refused with 413, unread.

A declared Content-Length over the limit is answered before the body is read; a body sent
without one (chunked) is counted as it arrives and refused once it passes the limit, so at
most the limit is ever held in memory. Under /v1 the answer is in OpenAI's error shape.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.api.errors import API_PREFIX, ApiError, error_response

CODE = "request_too_large"


class BodyTooLargeError(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large(limit), code=CODE)


def too_large(limit: int) -> str:
    return (
        f"the request body is larger than the {limit} bytes allowed (MAX_REQUEST_BODY_BYTES): "
        "send fewer or shorter inputs per request"
    )


class BodyLimit:
    """ASGI middleware: refuse request bodies over `max_bytes` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the route's body read: FastAPI passes HTTPExceptions on,
                    # and the app's handlers answer it (OpenAI's shape under /v1).
                    raise BodyTooLargeError(self.max_bytes)
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = too_large(self.max_bytes)
        if str(scope.get("path", "")).startswith(API_PREFIX):
            response = error_response(413, message, code=CODE, headers={"Connection": "close"})
        else:
            response = JSONResponse(
                {"detail": message}, status_code=413, headers={"Connection": "close"}
            )
        await response(scope, receive, send)
