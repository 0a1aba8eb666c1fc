"""Only the Rasa server may call the action server: a shared secret on every request but the health check.

The secret comes from `ENGAGE_ACTION_TOKEN` (`make run` generates one when it is unset);
Rasa sends it as `Authorization: Bearer <token>` (the `action_endpoint` headers in
endpoints.yml). Without it the action server would run any action, with any tracker the
caller writes, for anyone who can reach its port.
"""

from __future__ import annotations

import hmac
import logging
import os
from typing import Any, Awaitable, Callable, Mapping, Optional

from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)

TOKEN_ENV = "ENGAGE_ACTION_TOKEN"
HOST_ENV = "SANIC_HOST"  # rasa-sdk reads the listening address from it (default 0.0.0.0)
LOOPBACK = "127.0.0.1"
MIN_TOKEN_CHARS = 32
SCHEME = "bearer"
# The health check says only {"status": "ok"}; Rasa's channels and the supervisor probe it.
OPEN_PATHS = frozenset({"/health"})


class ActionTokenError(RuntimeError):
    """The action server has no usable shared secret; the message says how to set one."""


def load_token(environ: Mapping[str, str] = os.environ) -> bytes:
    token = environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise ActionTokenError(
            f"{TOKEN_ENV} is not set: the action server refuses to run actions without a shared secret. "
            f"Start it with `make run` (which generates one), or set {TOKEN_ENV} to the same random value "
            "(at least 32 characters, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`) "
            "for the action server and the Rasa server."
        )
    if len(token) < MIN_TOKEN_CHARS:
        raise ActionTokenError(f"{TOKEN_ENV} is too short ({len(token)} characters): use at least {MIN_TOKEN_CHARS}.")
    return token.encode()


def authorized(header: Optional[str], token: bytes) -> bool:
    """True when `header` is `Bearer <token>` (compared in constant time)."""
    scheme, _, presented = (header or "").partition(" ")
    if scheme.lower() != SCHEME or not presented:
        return False
    # surrogateescape: header bytes that are not UTF-8 reach us as surrogate escapes (found by
    # tests/e2e/fuzz); they are compared as the bytes they were, and simply do not match.
    return hmac.compare_digest(presented.strip().encode("utf-8", "surrogateescape"), token)


def bind_loopback_by_default(environ: Any = os.environ) -> str:
    """Listen on 127.0.0.1 unless SANIC_HOST says otherwise (rasa-sdk's own default is 0.0.0.0).

    rasa-sdk reads SANIC_HOST after the app factory has run the plugin hooks, so setting the
    default here takes effect for `python -m rasa_sdk` however it is started.
    """
    return str(environ.setdefault(HOST_ENV, LOOPBACK))


Middleware = Callable[[Request], Awaitable[Optional[HTTPResponse]]]


def token_middleware(token: bytes) -> Middleware:
    """A Sanic request middleware that answers 401 to any request without the shared secret."""

    async def require_token(request: Request) -> Optional[HTTPResponse]:
        if request.path in OPEN_PATHS:
            return None
        if authorized(request.headers.get("authorization"), token):
            return None
        logger.warning("refused an unauthenticated %s %s from %s", request.method, request.path, request.ip)
        return response.json(
            {"error": "unauthorized", "detail": "This action server only answers the Rasa server (Authorization: Bearer)."},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="engage-actions"'},
        )

    return require_token
