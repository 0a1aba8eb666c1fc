"""The action server's Redis client (handover queue, one-time codes, customer directory), one per event loop."""

from __future__ import annotations

import asyncio
from typing import Optional, Tuple

import redis.asyncio as aioredis

from actions.clients import settings
from analytics.redis_connect import connect

_shared: Optional[Tuple[asyncio.AbstractEventLoop, "aioredis.Redis"]] = None


# A restarting Redis (the supervisor brings it back in a second or two) is waited for this long
# before an action gives up; Rasa's own stores wait 10 s, and an action runs inside that turn.
OUTAGE_WAIT = 5.0


def shared_client(timeout: float = 2.0) -> "aioredis.Redis":
    """The process's Redis client, created inside the running loop (decoded strings)."""
    global _shared
    loop = asyncio.get_running_loop()
    if _shared is None or _shared[0] is not loop:
        client = connect(settings.redis_url(), timeout, decode_responses=True, outage_wait=OUTAGE_WAIT)
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
