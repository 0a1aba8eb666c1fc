"""The connectors' customer resolver on a real Redis, including a Redis restart between messages."""

from __future__ import annotations

from analytics.customers import Identity
from connectors.identity import IdentityResolver
from tests.conftest import RedisServer


async def test_a_redis_restart_does_not_fail_the_next_message(redis_server: RedisServer, redis_url: str) -> None:
    resolver = IdentityResolver(redis_url)
    try:
        first = await resolver.customer_for([Identity.of("web", "session-restart-0001")])
        redis_server.restart()  # AOF on: the directory survives, the pooled connection does not
        assert await resolver.customer_for([Identity.of("web", "session-restart-0001")]) == first
    finally:
        await resolver.close()
