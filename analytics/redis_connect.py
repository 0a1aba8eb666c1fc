"""Where Redis is and the redis.asyncio client the connectors and the action server use (both runtimes import it)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Awaitable, Callable, Dict, List, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError
from redis.exceptions import TimeoutError as RedisTimeoutError

DEFAULT_REDIS_URL = "redis://127.0.0.1:6390/0"  # the private Redis of `make run`

T = TypeVar("T")


class RetryFor(Retry):
    """Retry a command for `seconds` (backoff 50 ms doubling to 1 s), not a number of times.

    Long enough to ride out Redis being restarted by `make run`'s supervisor (about a
    second) without a customer's message failing; bounded in time, unlike a retry count,
    whatever the errors cost.
    """

    def __init__(self, seconds: float) -> None:
        # OSError too: reconnecting a pooled connection to a Redis that is not back yet raises
        # ConnectionRefusedError inside redis-py's connect(), before it becomes a redis error.
        super().__init__(ExponentialBackoff(cap=1.0, base=0.05), -1, (RedisConnectionError, RedisTimeoutError, OSError))
        self.seconds = seconds

    async def call_with_retry(self, do: Callable[[], Awaitable[T]], fail: Callable[[Any], Any]) -> T:
        deadline = time.monotonic() + self.seconds
        self._backoff.reset()
        failures = 0
        while True:
            try:
                return await do()
            except self._supported_errors as error:
                failures += 1
                await fail(error)
                backoff = self._backoff.compute(failures)
                if time.monotonic() + backoff > deadline:
                    raise error
                await asyncio.sleep(backoff)


try:  # the C packer (the actions runtime has it; Rasa's may not)
    from hiredis import pack_command as _pack
except ImportError:  # pragma: no cover - redis-py's own packer then
    _pack = None


class HiredisConnection(aioredis.Connection):
    """Commands packed by hiredis, as redis-py's synchronous client does when hiredis is installed;
    its asyncio client packs them in Python, one argument at a time (a replay sends millions)."""

    def pack_command(self, *args: Any) -> List[bytes]:
        if isinstance(args[0], str):
            args = tuple(args[0].encode().split()) + args[1:]
        elif b" " in args[0]:
            args = tuple(args[0].split()) + args[1:]
        try:
            return [_pack(args)]
        except TypeError as error:
            raise DataError(str(error)) from error


def _connection_class(url: str) -> Dict[str, Any]:
    # TCP only: redis-py picks its own class for unix:// and rediss:// whatever it is given.
    return {"connection_class": HiredisConnection} if _pack is not None and urlsplit(url).scheme == "redis" else {}


def redis_url() -> str:
    """REDIS_URL from the environment, else the Redis `make run` starts."""
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def connect(url: str, timeout: float, decode_responses: bool = False, outage_wait: float = 0.0) -> "aioredis.Redis":
    """A client whose commands retry on a fresh connection: a pooled one goes stale when Redis
    restarts, and the customer's message should not fail for it.

    With `outage_wait`, a command keeps retrying that many seconds while Redis is unreachable;
    without, it gives up after three quick retries (under a second).
    """
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=decode_responses,
        retry=RetryFor(outage_wait) if outage_wait > 0 else Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        socket_read_size=1 << 20,  # a replay's reads are megabytes: fewer, larger reads (nothing is allocated ahead)
        **_connection_class(url),
    )
