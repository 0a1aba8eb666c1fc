"""Helpers for connector tests: serve a real Sanic app on a free port and talk HTTP to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional, Tuple

import aiohttp
from aiohttp import web
import redis
from rasa.core.channels.channel import UserMessage
from sanic import Sanic

from analytics.schema import EVENTS_STREAM, LogEvent
from tests.conftest import free_port


def new_app() -> Sanic:
    # Sanic 21 rewrites its own HTTP methods at start-up ("touch-up") and fails on
    # the second app in one process unless test_mode keeps the originals.
    Sanic.test_mode = True
    return Sanic(f"engage_test_{uuid.uuid4().hex}", configure_logging=False)


@contextlib.asynccontextmanager
async def serving(app: Sanic) -> AsyncIterator[str]:
    """Run `app` on 127.0.0.1 until the block ends; yields its base URL."""
    port = free_port()
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False)
    assert server is not None  # awaiting create_server already started listening
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.before_stop()
        for connection in list(server.connections):
            connection.close_if_idle()
        await asyncio.sleep(0.05)
        for connection in list(server.connections):  # a client that holds a long-poll open
            connection.close()
        close = server.close()
        if close is not None:
            await close
        await server.after_stop()


class Recorder:
    """An `on_new_message` callback (Rasa's hook) that records what it is given.

    After `delay` seconds it answers with `replies`, then raises `error` if given.
    """

    def __init__(
        self,
        replies: Tuple[str, ...] = ("Hi! I'm the Quillstack assistant.",),
        error: Optional[Exception] = None,
        delay: float = 0.0,
    ) -> None:
        self.replies = replies
        self.error = error
        self.delay = delay
        self.calls: List[UserMessage] = []

    async def __call__(self, message: UserMessage) -> None:
        self.calls.append(message)
        await asyncio.sleep(self.delay)
        for text in self.replies:
            await message.output_channel.send_text_message(message.sender_id, text)
        if self.error is not None:
            raise self.error


async def post(
    session: aiohttp.ClientSession, url: str, payload: Any = None, *, raw: Optional[bytes] = None
) -> Tuple[int, Any]:
    """POST `payload` as JSON (or `raw` bytes as they are); return status and decoded JSON body."""
    kwargs: Dict[str, Any] = {"data": raw} if raw is not None else {"json": payload}
    async with session.post(url, timeout=aiohttp.ClientTimeout(total=30), **kwargs) as response:
        return response.status, await response.json(content_type=None)


@contextlib.asynccontextmanager
async def action_server(
    webhook: Optional[Dict[str, Any]] = None, webhook_status: int = 200, health_delay: float = 0.0
) -> AsyncIterator[str]:
    """A stand-in rasa-sdk action server over real HTTP: /health and /webhook.

    Yields the webhook URL, as endpoints.yml names it.
    """

    async def health(request: web.Request) -> web.Response:
        await asyncio.sleep(health_delay)
        return web.json_response({"status": "ok"})

    async def run_action(request: web.Request) -> web.Response:
        await request.json()
        return web.json_response(webhook or {"events": [], "responses": []}, status=webhook_status)

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/webhook", run_action)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}/webhook"
    finally:
        await runner.cleanup()


def dead_action_url() -> str:
    """An action endpoint nothing listens on."""
    return f"http://127.0.0.1:{free_port()}/webhook"


def wrong_shapes(node: Any, path: tuple = ()) -> Iterator[tuple]:
    """(path, value) for every part of `node` replaced, in turn, by a value of another type."""
    for wrong in (None, 1, "x", [], {}, [[]]):
        if path:
            yield path, wrong
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from wrong_shapes(child, path + (key,))


def replaced(payload: Any, path: tuple, value: Any) -> Any:
    copy = json.loads(json.dumps(payload))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return copy


def read_stream(url: str) -> List[LogEvent]:
    client = redis.Redis.from_url(url)
    try:
        return [LogEvent.from_fields(fields) for _, fields in client.xrange(EVENTS_STREAM)]
    finally:
        client.close()


@contextlib.asynccontextmanager
async def channel_app(redis_url: str, tmp_path: Path) -> AsyncIterator[Tuple[Sanic, Any, Any]]:
    """A Sanic app whose model-less Rasa agent holds our event broker, and a customer resolver.

    Yields (app, broker, resolver); mount a channel's blueprint on the app and serve it.
    """
    from rasa.core.agent import Agent
    from rasa.core.tracker_store import InMemoryTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.utils.endpoints import EndpointConfig

    from bot.broker import RedisStreamEventBroker
    from connectors.identity import IdentityResolver

    broker = RedisStreamEventBroker(redis_url, spool_path=tmp_path / "spool.jsonl")
    broker.start()
    resolver = IdentityResolver(redis_url)
    app = new_app()
    app.ctx.agent = Agent(
        tracker_store=InMemoryTrackerStore(Domain.empty(), event_broker=broker),
        action_endpoint=EndpointConfig(url=dead_action_url()),
    )
    try:
        yield app, broker, resolver
    finally:
        await resolver.close()
        await broker.close()
