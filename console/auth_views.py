"""Sign in, sign out, sign out everywhere."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session

from console.app import CONFIG, LIMITER, USERS
from console.errors import Refused
from console.security import USER, check_csrf, csrf_token, current_user, requires, sign_in


def _address(request: web.Request) -> str:
    return request.remote or "unknown"


async def login_page(request: web.Request) -> web.StreamResponse:
    if await current_user(request) is not None:
        raise web.HTTPSeeOther("/")
    return aiohttp_jinja2.render_template("login.html", request, {"csrf": await csrf_token(request), "error": "", "login": "", "user": None})


async def login(request: web.Request) -> web.StreamResponse:
    await check_csrf(request)
    form = await request.post()
    login_name = str(form.get("login", "")).strip().lower()[:64]
    password = str(form.get("password", ""))
    limiter = request.app[LIMITER]
    try:
        await limiter.check(login_name, _address(request))
    except Refused as refused:
        return _login_again(request, refused.message, login_name, refused.status, await csrf_token(request))
    user = await request.app[USERS].authenticate(login_name, password)
    if user is None:
        await limiter.failed(login_name, _address(request))
        return _login_again(request, "That login and password do not match. Check both and try again.", login_name, 401,
                            await csrf_token(request))
    await limiter.succeeded(login_name)
    await sign_in(request, user, request.app[CONFIG].session_hours * 3600)
    raise web.HTTPSeeOther("/")


def _login_again(request: web.Request, error: str, login_name: str, status: int, csrf: str) -> web.StreamResponse:
    response = aiohttp_jinja2.render_template("login.html", request, {"csrf": csrf, "error": error, "login": login_name, "user": None})
    response.set_status(status)
    return response


@requires("agent", "sales", "product")
async def logout(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    user = request[USER]
    await request.app[USERS].close_session(user.login, str(session.get("sid", "")))
    session.invalidate()
    raise web.HTTPSeeOther("/login")


@requires("agent", "sales", "product")
async def logout_everywhere(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    await request.app[USERS].close_all_sessions(request[USER].login)
    session.invalidate()
    raise web.HTTPSeeOther("/login")


@requires("agent", "sales", "product")
async def home(request: web.Request) -> web.StreamResponse:
    user = request[USER]
    if user.handles_conversations:
        raise web.HTTPSeeOther("/queue")
    return aiohttp_jinja2.render_template("home.html", request, {"user": user, "csrf": await csrf_token(request)})
