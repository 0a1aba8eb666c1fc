"""Bad input to the themes (issue 11): empty, one-word, emoji-only, non-English and 10,000-character
ideas with the real encoder; nothing half-written, nothing applied twice."""

from __future__ import annotations

import json

import pytest
import redis.asyncio
from aiohttp import web

from analytics.ideas.config import load_settings
from analytics.ideas.themes import ITEMS, ThemeStore, default_encoder
from tests.analytics.ideas.support import idea
from tests.conftest import free_port


@pytest.mark.minilm
async def test_odd_ideas_are_kept_cut_or_left_out_and_a_redelivery_changes_nothing(client: redis.asyncio.Redis) -> None:
    settings = load_settings()
    store = ThemeStore(client, default_encoder(), settings)
    long = "Please let us export dashboards to PDF. " * 250  # 10,000 characters
    log = [
        idea("C-1", "", 1.0), idea("C-2", "   ", 2.0), idea("C-3", "🌙🌙🌙", 3.0),  # nothing to mine
        idea("C-4", "dark", 4.0), idea("C-5", "Bitte einen Dunkelmodus für den Editor", 5.0), idea("C-6", long, 6.0),
        idea("C-7", "add a dark mode", 7.0), idea("C-8", "ダークモードを追加してください", 8.0),
    ]
    assert len(long) == 10_000
    assert await store.apply_batch(log) == {}
    items = {item["customer"]: item for item in (json.loads(raw) for raw in (await client.hgetall(ITEMS)).values())}
    assert sorted(items) == ["C-4", "C-5", "C-6", "C-7", "C-8"]
    assert len(items["C-6"]["text"]) == settings.max_chars and long.startswith(items["C-6"]["text"])
    assert all(item["theme"] for item in items.values())
    before = await client.hgetall(ITEMS)
    assert await store.apply_batch(log) == {} and await client.hgetall(ITEMS) == before


@pytest.mark.minilm
async def test_the_match_endpoint_refuses_what_it_cannot_read(client: redis.asyncio.Redis) -> None:
    import aiohttp

    from analytics.service import create_app
    from analytics.stream.consumer import StreamConsumer

    store = ThemeStore(client, default_encoder(), load_settings())
    await store.apply_batch([idea("C-1", "add a dark mode", 1.0), idea("C-2", "please add dark mode", 2.0)])
    runner = web.AppRunner(create_app(StreamConsumer(client, []), themes=store))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/ideas/match"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json={"text": "x" * 10_001}) as answer:
                assert answer.status == 400 and "10,000" in (await answer.json())["error"]
            async with http.post(url, data=b"not json", headers={"Content-Type": "application/json"}) as answer:
                assert answer.status == 400
            async with http.post(url, json={"text": "🌙🌙"}) as answer:
                assert await answer.json() == {"how": None, "theme": None}
            async with http.post(url, json={"text": "dark mode please", "customer": "C-1"}) as answer:
                found = await answer.json()
                assert (found["theme"], found["others"]) == ("TH-1", 1) and "dark mode" in found["label"]
    finally:
        await runner.cleanup()


async def test_a_match_that_fails_answers_503_with_the_reason(client: redis.asyncio.Redis) -> None:
    import aiohttp

    from analytics.service import create_app
    from analytics.stream.consumer import StreamConsumer

    class Missing:
        def encode(self, texts: list) -> None:
            raise RuntimeError("no encoder here")

    runner = web.AppRunner(create_app(StreamConsumer(client, []), themes=ThemeStore(client, Missing(), load_settings())))  # type: ignore[arg-type]
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/ideas/match", json={"text": "add a dark mode"}) as answer:
                assert answer.status == 503 and "no encoder here" in (await answer.json())["error"]
    finally:
        await runner.cleanup()
