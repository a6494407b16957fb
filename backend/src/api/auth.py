"""Who may call a /v1 route: the one place API keys are checked (src.api_keys has the file).

Every /v1 route depends on READ or WRITE. With API_KEYS_FILE unset the API is open and
these pass everything. Otherwise a request needs `Authorization: Bearer <key>` (what the
OpenAI SDKs send) with a listed key:
- no key, or one that is not listed: 401 (the SDKs raise AuthenticationError);
- a listed key whose scope does not cover the route: 403 (PermissionDeniedError).
Both in OpenAI's error shape (src.api.errors). /healthz, /readyz and /docs need no key.
The name of the key that was accepted goes to the access log (src.api.request_context).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from src.api.deps import get_settings
from src.api.errors import ApiError, error_responses
from src.api_keys import Scope

# auto_error=False: a missing or malformed header reaches the check below, which answers
# in OpenAI's shape. The scheme also gives /docs its "Authorize" button.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="api_key",
    description="An API key, when API_KEYS_FILE is set: `Authorization: Bearer <key>`.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
# Where the accepted key's name is kept for the access log.
KEY_NAME = "nica.api_key"


def authorize(
    request: Request, credentials: HTTPAuthorizationCredentials | None, needed: Scope
) -> None:
    keys = get_settings(request).api_keys
    if keys is None:
        return
    if credentials is None:
        raise ApiError(
            401,
            "no API key: send one as the header `Authorization: Bearer <key>` "
            "(the OpenAI SDKs send their api_key so)",
            code="missing_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    key = keys.match(credentials.credentials)
    if key is None:
        raise ApiError(
            401,
            "the API key is not valid here: check the key, or ask the operator for one",
            code="invalid_api_key",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    request.scope[KEY_NAME] = key.name
    if not key.allows(needed):
        raise ApiError(
            403,
            f"the API key {key.name!r} has scope {key.scope!r}; "
            f"{request.method} {request.url.path} needs scope {needed!r}",
            code="insufficient_scope",
        )


# async: a few microseconds of hashing, so no worker thread is taken for them.
async def need_read(request: Request, credentials: Credentials) -> None:
    """Embeddings, search, models."""
    authorize(request, credentials, "read")


async def need_write(request: Request, credentials: Credentials) -> None:
    """Documents and collections."""
    authorize(request, credentials, "write")


READ = Depends(need_read)
WRITE = Depends(need_write)
# The answers of READ and WRITE, for a router's `responses=` (the OpenAPI document).
RESPONSES = error_responses(
    {
        401: "no API key, or one that is not valid here (only when API_KEYS_FILE is set)",
        403: "the API key's scope does not cover this route",
    }
)
