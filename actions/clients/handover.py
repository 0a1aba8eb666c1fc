"""The human-handover queue in Redis: a sorted set of conversations plus one hash per request.

`engage:handover:queue` scores each waiting conversation by the time it first
asked; `engage:handover:request:<conversation_id>` holds channel, reason and
requested_at (key names in analytics/schema.py). Support staff (the console, a later issue) take from here.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Optional

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from actions.errors import HandoverQueueError
from analytics.schema import HANDOVER_QUEUE as QUEUE_KEY
from analytics.schema import handover_request_key as request_key

MAX_REASON = 1000


@dataclass(frozen=True)
class HandoverRequest:
    conversation_id: str
    channel: str
    reason: str
    requested_at: float
    team: str = "support"
    trigger: str = "asked_for_person"  # asked_for_person, misses, negative_feedback (sales_ready: analytics)
    ticket: bool = False  # no one of the team was available: agents see it first
    contact: str = ""  # how to reach the customer outside the chat, when known


class HandoverQueue:
    """Writes handover requests; every call is bounded by `timeout` seconds."""

    def __init__(self, client: "aioredis.Redis", timeout: float = 2.0) -> None:
        self._client = client
        self._timeout = timeout

    @property
    def client(self) -> "aioredis.Redis":
        return self._client

    async def enqueue(self, request: HandoverRequest) -> bool:
        """Queue the conversation; True if it was not waiting already.

        A conversation that asks again keeps its place (ZADD NX, first
        requested_at kept) while channel and reason are updated, in one
        MULTI/EXEC so the queue and the hash never disagree.
        """
        try:
            return await asyncio.wait_for(self._enqueue(request), self._timeout)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise HandoverQueueError(
                f"could not queue the handover: {type(exc).__name__}: {exc}",
                conversation_id=request.conversation_id,
            ) from exc

    async def _enqueue(self, request: HandoverRequest) -> bool:
        key = request_key(request.conversation_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zadd(QUEUE_KEY, {request.conversation_id: request.requested_at}, nx=True)
            pipe.hsetnx(key, "requested_at", repr(request.requested_at))
            pipe.hsetnx(key, "team", request.team)  # a conversation moved to another team stays there
            fields = {"channel": request.channel, "reason": request.reason[:MAX_REASON], "trigger": request.trigger}
            if request.ticket:
                fields["ticket"] = "1"
            if request.contact:
                fields["contact"] = request.contact[:200]
            pipe.hset(key, mapping=fields)
            added, _, _, _ = await pipe.execute()
        return bool(added)

    async def position(self, conversation_id: str) -> Optional[int]:
        """1-based place in the queue, None when not waiting."""
        try:
            rank = await asyncio.wait_for(self._client.zrank(QUEUE_KEY, conversation_id), self._timeout)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise HandoverQueueError(f"could not read the queue: {exc}", conversation_id=conversation_id) from exc
        return None if rank is None else int(rank) + 1


def now() -> float:
    return time.time()
