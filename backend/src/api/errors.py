"""Errors of the /v1 API in the OpenAI shape: `{"error": {"message", "type", "param", "code"}}`.

OpenAI's SDKs read `error.message` into the exception they raise (and `param`, `code`, `type`
into its attributes), so every error under /v1 (ours, FastAPI's validation errors, unknown
routes, unexpected failures) is answered in that shape with one line that says what to fix.
Other routes (/healthz, /readyz, /docs) keep FastAPI's shapes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

API_PREFIX = "/v1/"
MAX_SHOWN_VALUE = 40  # characters of a refused value quoted in a validation message


class ApiError(HTTPException):
    """An HTTPException with the OpenAI error's `param` (the request field at fault, e.g.
    "input[3]") and `code` (a stable name of the problem, e.g. "model_not_found")."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, message, dict(headers) if headers else None)
        self.param = param
        self.code = code


class ErrorDetail(BaseModel):
    message: str = Field(description="One line: what is wrong and what to change.")
    type: str = Field(description='"invalid_request_error" (4xx) or "server_error" (5xx).')
    param: str | None = Field(description='The request field at fault, e.g. "input[3]".')
    code: str | None = Field(description='A stable name of the problem, e.g. "model_not_found".')


class ErrorResponse(BaseModel):
    """The body of every error under /v1 (the OpenAI API's error shape)."""

    error: ErrorDetail


def error_responses(descriptions: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with its description and the error body."""
    return {
        status: {"model": ErrorResponse, "description": description}
        for status, description in descriptions.items()
    }


def error_type(status_code: int) -> str:
    return "server_error" if status_code >= 500 else "invalid_request_error"


def error_response(
    status_code: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    detail = ErrorDetail(message=message, type=error_type(status_code), param=param, code=code)
    return JSONResponse(
        ErrorResponse(error=detail).model_dump(), status_code=status_code, headers=headers
    )


def is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if not is_api(request):
        return await http_exception_handler(request, exc)
    message = str(exc.detail)
    if message == HTTPStatus(exc.status_code).phrase:  # the router's "Not Found", ...
        message = f"{message}: {request.method} {request.url.path}"
    return error_response(
        exc.status_code,
        message,
        param=getattr(exc, "param", None),
        code=getattr(exc, "code", None),
        headers=exc.headers,
    )


async def on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not is_api(request):
        return await request_validation_exception_handler(request, exc)
    errors = list(exc.errors())
    message, param = describe(errors[0])
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return error_response(422, message, param=param, code=errors[0].get("type"))


async def on_unexpected_error(request: Request, exc: Exception) -> Response:
    # Starlette logs the traceback itself; the answer names no internals.
    if not is_api(request):
        return PlainTextResponse("Internal Server Error", status_code=500)
    return error_response(500, "internal error: the backend's log has the details")


def describe(error: Mapping[str, Any]) -> tuple[str, str | None]:
    """One line for a pydantic error, and the field it names (None for the body as a whole)."""
    where = field_path(error.get("loc", ()))
    kind, text = error.get("type"), str(error.get("msg", "invalid"))
    if kind == "json_invalid":
        reason = error.get("ctx", {}).get("error", "")
        return f"the request body is not valid JSON: {reason}".rstrip(": "), None
    if where is None:
        if kind == "missing":
            return "the request needs a JSON body", None
        if kind == "model_attributes_type":
            return "the request body must be a JSON object", None
        return f"the request body: {text}", None
    if kind == "missing":
        return f"{where} is required", where
    if kind == "extra_forbidden":
        return f"{where} is not a field of this request (see /docs)", where
    if "param" in error.get("ctx", {}):  # our own checks (src.api.schemas) name the field
        return text, str(error["ctx"]["param"])
    value = error.get("input")
    if isinstance(value, str | int | float | bool) and len(repr(value)) <= MAX_SHOWN_VALUE:
        return f"{where}: {text}, got {value!r}", where
    return f"{where}: {text}", where


def field_path(loc: Sequence[Any]) -> str | None:
    """("body", "input", 3) -> "input[3]"; ("query", "k") -> "k"; ("body",) -> None."""
    parts = list(loc[1:]) if loc and loc[0] in {"body", "query", "path", "header"} else list(loc)
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or None


def install(app: FastAPI) -> None:
    """The handlers above, and an OpenAPI document that shows their shape under /v1."""
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected_error)
    make_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_api_validation_errors(make_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def with_api_validation_errors(document: dict[str, Any]) -> dict[str, Any]:
    """The 422 that FastAPI adds to every route with parameters (HTTPValidationError), as
    ErrorResponse under /v1, where on_validation_error answers it. (The /v1 routes'
    error_responses() put ErrorResponse among the components.)"""
    fastapis = {"$ref": "#/components/schemas/HTTPValidationError"}
    ours = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values() if path.startswith(API_PREFIX) else ():
            response = operation.get("responses", {}).get("422", {})
            if response.get("content", {}).get("application/json", {}).get("schema") == fastapis:
                response["description"] = "invalid request; error.message names the field"
                response["content"] = ours
    return document
