"""Sign-in, sessions, CSRF, roles and bad input on the real console app and a real redis-server."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from console.users import UserStore
from tests.console.conftest import PASSWORD, api_csrf, console_client, csrf_of, sign_in


async def test_sign_in_and_out(web: TestClient) -> None:
    async with web.get("/queue", allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"] == "/login"
    assert await sign_in(web, "ada") == 303
    async with web.get("/queue") as response:
        page = await response.text()
        assert response.status == 200 and "Ada Agent" in page and "Customer support queue" in page
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    token = await api_csrf(web)
    async with web.post("/logout", data={"csrf_token": token}, allow_redirects=False) as response:
        assert response.status == 303
    async with web.get("/queue", allow_redirects=False) as response:
        assert response.status == 303


async def test_wrong_passwords_are_limited(web: TestClient) -> None:
    for _ in range(3):
        assert await sign_in(web, "ada", "wrong password!!") == 401
    assert await sign_in(web, "ada") == 429  # the right password waits out the window too
    async with web.get("/login") as response:
        assert "Sign in" in await response.text()


async def test_a_replayed_cookie_after_logout_everywhere_is_refused(web: TestClient, redis_url: str) -> None:
    assert await sign_in(web, "ada") == 303
    stolen = {c.key: c.value for c in web.session.cookie_jar}
    other = await console_client(redis_url)
    try:
        other.session.cookie_jar.update_cookies(stolen)
        async with other.get("/queue", allow_redirects=False) as response:
            assert response.status == 200  # the copied cookie works while the session is open
        token = await api_csrf(web)
        async with web.post("/logout-everywhere", data={"csrf_token": token}, allow_redirects=False) as response:
            assert response.status == 303
        async with other.get("/queue", allow_redirects=False) as response:
            assert response.status == 303  # replayed: refused
        async with other.get("/api/queue") as response:
            assert response.status == 401 and "Sign in again" in (await response.json())["message"]
    finally:
        await other.close()


async def test_forged_cookies_and_another_secret_are_refused(web: TestClient, redis_url: str) -> None:
    assert await sign_in(web, "ada") == 303
    [cookie] = [c for c in web.session.cookie_jar if c.key == "engage_console"]
    other = await console_client(redis_url, secret="another secret that is long enough!!")
    try:
        for value in (cookie.value, cookie.value[:-4] + "AAAA", "gAAAAAforged", ""):
            other.session.cookie_jar.clear()
            other.session.cookie_jar.update_cookies({"engage_console": value})
            async with other.get("/api/queue") as response:
                assert response.status == 401
    finally:
        await other.close()


async def test_state_changing_calls_need_the_csrf_token(web: TestClient) -> None:
    assert await sign_in(web, "ada") == 303
    for headers in ({}, {"X-CSRF-Token": "nope"}):
        async with web.post("/api/presence", json={"status": "away"}, headers=headers) as response:
            assert response.status == 403 and "Reload the page" in (await response.json())["message"]
    token = await api_csrf(web)
    async with web.post("/api/presence", json={"status": "away"}, headers={"X-CSRF-Token": token}) as response:
        assert response.status == 200 and (await response.json())["status"] == "away"
    async with web.post("/login", data={"login": "ada", "password": PASSWORD}, allow_redirects=False) as response:
        assert response.status == 403  # even the login form


async def test_roles(web: TestClient) -> None:
    assert await sign_in(web, "pia") == 303
    async with web.get("/queue") as response:
        assert response.status == 403 and "Your role (product)" in await response.text()
    async with web.get("/api/queue") as response:
        assert response.status == 403
    async with web.get("/") as response:
        assert response.status == 200 and "Welcome, Pia Product" in await response.text()


async def test_accounts(client: Any) -> None:
    users = UserStore(client)
    await users.add("dana", "Dana", "agent", PASSWORD)
    stored = await client.hget("engage:console:user:dana", "password")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert await users.authenticate("dana", PASSWORD) is not None
    assert await users.authenticate("dana", "wrong one at all") is None
    assert await users.authenticate("nobody", PASSWORD) is None
    for login, password in (("Bad Login", PASSWORD), ("ok", "short")):
        try:
            await users.add(login, "x", "agent", password)
        except ValueError as exc:
            assert "login" in str(exc).lower() or "password" in str(exc).lower()
        else:
            raise AssertionError("accepted")
    await users.open_session("dana", "s1", 60)
    await users.set_password("dana", "another good password")
    assert not await users.session_open("dana", "s1")
