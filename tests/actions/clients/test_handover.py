"""The handover queue against a real Redis: content, keeping one's place, timeouts."""

from __future__ import annotations

import asyncio
import socket
from typing import AsyncIterator

import pytest
import redis.asyncio as aioredis

from actions.clients.handover import QUEUE_KEY, HandoverQueue, HandoverRequest, request_key
from actions.errors import HandoverQueueError


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    await connection.aclose()


async def test_enqueue_writes_the_sorted_set_and_the_hash(client: aioredis.Redis) -> None:
    queue = HandoverQueue(client)
    assert await queue.enqueue(HandoverRequest("conv-1", "portal", "I need help with SSO", 1000.5))
    assert await queue.enqueue(HandoverRequest("conv-2", "rest", "billing question", 1001.0))
    assert await client.zrange(QUEUE_KEY, 0, -1, withscores=True) == [("conv-1", 1000.5), ("conv-2", 1001.0)]
    assert await client.hgetall(request_key("conv-1")) == {
        "channel": "portal",
        "reason": "I need help with SSO",
        "requested_at": "1000.5",
        "team": "support",
        "trigger": "asked_for_person",
    }
    assert await queue.position("conv-2") == 2
    assert await queue.position("nobody") is None


async def test_asking_again_keeps_the_place_and_updates_the_reason(client: aioredis.Redis) -> None:
    queue = HandoverQueue(client)
    await queue.enqueue(HandoverRequest("conv-1", "rest", "first", 10.0))
    assert not await queue.enqueue(HandoverRequest("conv-1", "portal", "still waiting", 20.0))
    assert await client.zscore(QUEUE_KEY, "conv-1") == 10.0
    stored = await client.hgetall(request_key("conv-1"))
    assert stored == {"channel": "portal", "reason": "still waiting", "requested_at": "10.0", "team": "support", "trigger": "asked_for_person"}


async def test_a_ticket_keeps_its_team_and_how_to_reach_the_customer(client: aioredis.Redis) -> None:
    queue = HandoverQueue(client)
    await client.hset(request_key("conv-3"), "team", "sales")  # moved to sales by an agent earlier
    await queue.enqueue(HandoverRequest("conv-3", "whatsapp", "call me", 5.0, trigger="misses", ticket=True, contact="dana@acme.example"))
    stored = await client.hgetall(request_key("conv-3"))
    assert (stored["team"], stored["trigger"], stored["ticket"], stored["contact"]) == ("sales", "misses", "1", "dana@acme.example")


async def test_long_reasons_are_capped(client: aioredis.Redis) -> None:
    await HandoverQueue(client).enqueue(HandoverRequest("conv-1", "rest", "x" * 5000, 1.0))
    assert len(await client.hget(request_key("conv-1"), "reason")) == 1000


async def test_unreachable_redis_is_a_handover_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.5)
        with pytest.raises(HandoverQueueError, match="could not queue"):
            await HandoverQueue(dead, timeout=1.0).enqueue(HandoverRequest("c", "rest", "r", 1.0))
        await dead.aclose()


async def test_a_silent_redis_times_out() -> None:
    # A server that accepts connections and never answers: only the timeout ends the wait.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    silent = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
    started = asyncio.get_running_loop().time()
    with pytest.raises(HandoverQueueError, match="TimeoutError"):
        await HandoverQueue(silent, timeout=0.3).enqueue(HandoverRequest("c", "rest", "r", 1.0))
    assert asyncio.get_running_loop().time() - started < 2.0
    server.close()
    await silent.aclose()
