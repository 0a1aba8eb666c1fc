"""Where Redis is and the redis.asyncio client the connectors and the action server use (both runtimes import it)."""

from __future__ import annotations

import os

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

DEFAULT_REDIS_URL = "redis://127.0.0.1:6390/0"  # the private Redis of `make run`


def redis_url() -> str:
    """REDIS_URL from the environment, else the Redis `make run` starts."""
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def connect(url: str, timeout: float, decode_responses: bool = False) -> "aioredis.Redis":
    """A client whose commands retry on a fresh connection: a pooled one goes stale when Redis
    restarts, and the customer's message should not fail for it."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=decode_responses,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
