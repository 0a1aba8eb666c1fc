"""Sign-in, sessions, CSRF and role checks for every console page and API.

Sessions live in an encrypted, authenticated cookie (aiohttp-session's EncryptedCookieStorage,
Fernet: AES-128-CBC + HMAC-SHA256) keyed from ENGAGE_CONSOLE_SECRET. A signed-in session holds
the login, a random session id and a CSRF token; the id must still be listed for the login in
Redis (console.users), so a logged-out or "logged out everywhere" cookie, replayed, is refused.
Every POST must carry the session's CSRF token (form field `csrf_token` or header
`X-CSRF-Token`), compared in constant time. Failed sign-ins are counted per login and per
address; past the limit the login waits out the window (429).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from typing import Any, Awaitable, Callable, Optional

from aiohttp import web
from aiohttp_session import get_session, new_session

from console.errors import Refused
from console.users import StaffUser

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COOKIE = "engage_console"
USER = web.RequestKey("user", Optional[StaffUser])  # the signed-in user, once looked up for this request
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
FAIL_PREFIX = "engage:console:login-failures:"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MIN_SECRET = 32


def fernet_key(secret: str) -> bytes:
    """32 key bytes derived from the configured secret (EncryptedCookieStorage makes the Fernet key of them)."""
    if len(secret) < MIN_SECRET:
        raise ValueError(f"ENGAGE_CONSOLE_SECRET must be at least {MIN_SECRET} characters; "
                         "make run generates one, or: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return hashlib.sha256(("engage-console\0" + secret).encode()).digest()


async def csrf_token(request: web.Request) -> str:
    session = await get_session(request)
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


async def check_csrf(request: web.Request) -> None:
    session = await get_session(request)
    expected = session.get("csrf") or ""
    given = request.headers.get(CSRF_HEADER, "")
    if not given and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        given = str((await request.post()).get(CSRF_FIELD, ""))
    if not expected or not given or not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode()):
        raise Refused(403, "csrf", "This form is out of date or was not sent by the console. Reload the page and try again.")


async def sign_in(request: web.Request, user: StaffUser, lifetime: float) -> None:
    from console.app import USERS  # the app's keys live with its factory

    session = await new_session(request)  # a new cookie: nothing of the anonymous one carries over
    session_id = secrets.token_urlsafe(24)
    session.update({"login": user.login, "sid": session_id, "csrf": secrets.token_urlsafe(32), "at": time.time()})
    await request.app[USERS].open_session(user.login, session_id, lifetime)


async def current_user(request: web.Request) -> Optional[StaffUser]:
    """The signed-in user, or None (no cookie, a cookie that was tampered with, expired or signed out)."""
    from console.app import CONFIG, USERS

    if USER in request:
        return request[USER]
    session = await get_session(request)
    login, session_id, at = session.get("login"), session.get("sid"), session.get("at")
    user = None
    if isinstance(login, str) and isinstance(session_id, str) and isinstance(at, (int, float)):
        fresh = time.time() - at < request.app[CONFIG].session_hours * 3600
        if fresh and await request.app[USERS].session_open(login, session_id):
            user = await request.app[USERS].get(login)
    request[USER] = user
    return user


def requires(*roles: str) -> Callable[[Handler], Handler]:
    """A page or API for signed-in users with one of `roles` (admin passes every check); POSTs need CSRF."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            user = await current_user(request)
            if user is None:
                if _wants_json(request):
                    raise Refused(401, "signed_out", "You are signed out. Sign in again at /login.")
                raise web.HTTPSeeOther("/login")
            if user.role != "admin" and user.role not in roles:
                raise Refused(403, "role", f"Your role ({user.role}) cannot open this; ask an admin if you need it.")
            if request.method not in SAFE_METHODS:
                await check_csrf(request)
            return await handler(request)

        return checked

    return wrap


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


class LoginLimiter:
    """Counts failed sign-ins per login and per address in Redis (fixed window)."""

    def __init__(self, client: Any, max_failures: int, window_seconds: float) -> None:
        self.client = client
        self.max_failures = max_failures
        self.window = int(window_seconds)

    def _keys(self, login: str, address: str) -> "tuple[str, str]":
        return FAIL_PREFIX + "login:" + login[:64], FAIL_PREFIX + "addr:" + address[:64]

    async def check(self, login: str, address: str) -> None:
        for key in self._keys(login, address):
            count = await self.client.get(key)
            if count is not None and int(count) >= self.max_failures:
                wait = max(1, await self.client.ttl(key))
                raise Refused(429, "too_many_failures",
                              f"Too many wrong passwords. Wait {max(1, round(wait / 60))} minute(s) and try again, or ask an admin to reset your password.")

    async def failed(self, login: str, address: str) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            for key in self._keys(login, address):
                pipe.incr(key)
                pipe.expire(key, self.window, nx=True)
            await pipe.execute()

    async def succeeded(self, login: str) -> None:
        await self.client.delete(self._keys(login, "")[0])
