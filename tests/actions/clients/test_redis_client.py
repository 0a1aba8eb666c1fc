"""The action server's shared Redis client waits out a short outage instead of failing the action."""

from __future__ import annotations

import asyncio
import time

import pytest

from actions.clients import redis_client


async def test_a_command_during_a_redis_restart_waits_for_it(redis_server, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setattr(redis_client, "_shared", None)
    client = redis_client.shared_client()
    try:
        await client.set("engage:test:before", "1")
        restart = asyncio.get_running_loop().run_in_executor(None, redis_server.restart, 1.5)  # down for 1.5 s
        await asyncio.sleep(0.3)  # Redis is down now
        started = time.monotonic()
        assert await client.set("engage:test:during", "2") is True
        assert time.monotonic() - started > 0.5  # it waited for the restart rather than failing at once
        await restart
        assert await client.get("engage:test:during") == "2"
    finally:
        await redis_client.close_shared_client()
