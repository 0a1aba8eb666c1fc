"""The console on a real aiohttp server (aiohttp.test_utils) and a real redis-server."""

from __future__ import annotations

import re
from typing import Any, AsyncIterator, Dict, Optional

import pytest
from aiohttp.test_utils import TestClient, TestServer

from console.app import create_app
from console.config import ConsoleConfig, Team
from console.users import UserStore
from tests.conftest import free_port

SECRET = "s" * 40
PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class NoFaq:
    """The canned-answer search is not under test here: it says it is unavailable, as a missing index does."""

    async def get(self) -> Any:
        from knowledge_base.errors import KnowledgeBaseUnavailable

        raise KnowledgeBaseUnavailable("index_missing", "not built in this test")


def config(**overrides: Any) -> ConsoleConfig:
    values: Dict[str, Any] = dict(login_max_failures=3, login_window_minutes=1, max_concurrent=2,
                                  teams={"support": Team("support", "Customer support"), "sales": Team("sales", "Sales")})
    values.update(overrides)
    return ConsoleConfig(**values)


async def console_client(redis_url: str, settings: Optional[ConsoleConfig] = None, secret: str = SECRET) -> TestClient:
    app = create_app(settings or config(), secret=secret, redis=redis_url, rasa_url=f"http://127.0.0.1:{free_port()}",
                     proactive_token="p" * 40, faq=NoFaq())
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def web(redis_url: str, client: Any) -> AsyncIterator[TestClient]:
    users = UserStore(client)
    await users.add("ada", "Ada Agent", "agent", PASSWORD)
    await users.add("bob", "Bob Agent", "agent", PASSWORD)
    await users.add("sam", "Sam Sales", "sales", PASSWORD)
    await users.add("pia", "Pia Product", "product", PASSWORD)
    await users.add("root", "Rita Admin", "admin", PASSWORD)
    test_client = await console_client(redis_url)
    yield test_client
    await test_client.close()


async def csrf_of(client: TestClient, path: str = "/login") -> str:
    async with client.get(path) as response:
        found = CSRF.search(await response.text())
    assert found, f"no CSRF token on {path}"
    return found.group(1)


async def sign_in(client: TestClient, login: str, password: str = PASSWORD) -> int:
    token = await csrf_of(client)
    async with client.post("/login", data={"login": login, "password": password, "csrf_token": token}, allow_redirects=False) as response:
        return response.status


async def api_csrf(client: TestClient) -> str:
    async with client.get("/queue") as response:
        found = re.search(r'<meta name="csrf-token" content="([^"]+)"', await response.text())
    assert found
    return found.group(1)
