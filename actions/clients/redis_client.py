"""The action server's Redis client (handover queue, one-time codes, customer directory), one per event loop."""

from __future__ import annotations

import asyncio
from typing import Optional, Tuple

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from actions.clients import settings

_shared: Optional[Tuple[asyncio.AbstractEventLoop, "aioredis.Redis"]] = None


def shared_client(timeout: float = 2.0) -> "aioredis.Redis":
    """The process's Redis client, created inside the running loop (decoded strings)."""
    global _shared
    loop = asyncio.get_running_loop()
    if _shared is None or _shared[0] is not loop:
        # A pooled connection goes stale when Redis restarts: retry on a fresh one.
        client = aioredis.Redis.from_url(
            settings.redis_url(),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        _shared = (loop, client)
    return _shared[1]


async def close_shared_client() -> None:
    """Close the shared client if this loop made it (tests; the server's stop)."""
    global _shared
    if _shared is None:
        return
    loop, client = _shared
    _shared = None
    if loop is asyncio.get_running_loop():
        try:
            await client.aclose()
        except aioredis.RedisError:
            pass
