"""The shared redis.asyncio client: it rides out a Redis restart when asked to, and only then."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from analytics.redis_connect import connect
from tests.conftest import RedisServer


@pytest.fixture
def own_redis(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


async def test_with_outage_wait_a_command_waits_for_redis_to_come_back(own_redis: RedisServer) -> None:
    client = connect(own_redis.url, 0.5, outage_wait=8.0)
    await client.set("engage:test", "before")  # a pooled connection that the restart makes stale
    own_redis.stop()
    back = threading.Thread(target=lambda: (time.sleep(1.5), own_redis.start()))
    back.start()
    started = time.monotonic()
    assert await client.get("engage:test") == b"before"  # AOF brought it back
    back.join()
    assert time.monotonic() - started >= 1.0
    await client.aclose() if hasattr(client, "aclose") else await client.close()


async def test_the_wait_is_bounded_in_time(own_redis: RedisServer) -> None:
    own_redis.stop()
    for outage_wait, at_most in ((0.0, 2.0), (1.5, 3.0)):
        client = connect(own_redis.url, 0.5, outage_wait=outage_wait)
        started = time.monotonic()
        with pytest.raises(RedisConnectionError):
            await client.get("engage:test")
        assert time.monotonic() - started < at_most
        await client.aclose() if hasattr(client, "aclose") else await client.close()
