"""Middlewares: refusals become one clear answer (JSON for the API, a page otherwise), and every
response carries a strict Content-Security-Policy (scripts only from the console itself)."""

from __future__ import annotations

import logging
from typing import Any, Dict

import aiohttp_jinja2
from aiohttp import web

from console.errors import Refused

logger = logging.getLogger(__name__)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")


async def json_object(request: web.Request) -> Dict[str, Any]:
    """The request's JSON object body; anything else (not JSON, not an object, nested past what the
    parser can follow) is a 400 that says what to send."""
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise Refused(400, "bad_json", "Send a JSON object.") from None
    if not isinstance(body, dict):
        raise Refused(400, "bad_json", "Send a JSON object.")
    return body


@web.middleware
async def security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        _headers(response)
        raise
    _headers(response)
    return response


def _headers(response: web.StreamResponse) -> None:
    if response.prepared:
        return
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except Refused as refused:
        if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
            return web.json_response({"error": refused.code, "message": refused.message}, status=refused.status)
        from console.security import current_user

        user = None
        try:
            user = await current_user(request)
        except Exception:  # noqa: BLE001 - the refusal page must render even when the session cannot be read
            pass
        response = aiohttp_jinja2.render_template("error.html", request, {"message": refused.message, "user": user, "csrf": ""})
        response.set_status(refused.status)
        return response
