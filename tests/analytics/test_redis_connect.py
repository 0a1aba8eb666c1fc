"""The shared redis.asyncio client: it rides out a Redis restart when asked to, and only then; hiredis packs its commands."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError

from analytics.redis_connect import HiredisConnection, connect
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


async def test_commands_are_packed_by_hiredis_into_the_bytes_redis_py_would_send(own_redis: RedisServer) -> None:
    client = connect(own_redis.url, 2.0, decode_responses=True)
    connection = client.connection_pool.make_connection()
    assert isinstance(connection, HiredisConnection)
    python_packed = aioredis.Connection().pack_command
    for command in (("SET", "k", "é ü", 1.5), ("HSET", "h", "f", 2, "g", b"\x00\xff"), ("CONFIG GET", "maxmemory"), (b"XADD", "s", "*", "x", 1e16)):
        assert b"".join(connection.pack_command(*command)) == b"".join(python_packed(*command))
    with pytest.raises(DataError):
        connection.pack_command("SET", "k", object())
    # And on the wire: values of every type round-trip, multi-word commands are split.
    await client.hset("engage:test", mapping={"text": "ünïcode\nline", "n": 3, "f": 0.1})
    assert await client.hgetall("engage:test") == {"text": "ünïcode\nline", "n": "3", "f": "0.1"}
    assert await client.config_get("maxmemory")
    await client.aclose()
