"""Messages waiting for a customer who is not connected (a closed web chat, the portal between polls).

A proactive message (connectors.proactive) for a web-chat session with no open socket, or for a
portal user, is kept here and handed over when the session connects again (or the portal asks):
one Redis list per channel identity, `engage:outbox:<kind>:<value>`, newest last, at most
`MAX_WAITING` messages, kept `TTL_SECONDS` after the last one. Taking is atomic (LRANGE and DEL
in one MULTI), so two tabs connecting at once do not both get the same message.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

from analytics.schema import KEY_PREFIX

OUTBOX_PREFIX = KEY_PREFIX + "outbox:"
MAX_WAITING = 50
TTL_SECONDS = 7 * 24 * 3600


def outbox_key(kind: str, value: str) -> str:
    return f"{OUTBOX_PREFIX}{kind}:{value}"


class Mailbox:
    """Waiting messages per channel identity, on the connectors' redis.asyncio client."""

    def __init__(self, client: Any, max_waiting: int = MAX_WAITING, ttl: int = TTL_SECONDS) -> None:
        self.client = client
        self.max_waiting = max_waiting
        self.ttl = ttl

    async def put(self, kind: str, value: str, message: Dict[str, Any]) -> None:
        key = outbox_key(kind, value)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(key, json.dumps(message, ensure_ascii=False))
            pipe.ltrim(key, -self.max_waiting, -1)
            pipe.expire(key, self.ttl)
            await pipe.execute()

    async def take(self, kind: str, value: str) -> List[Dict[str, Any]]:
        """Every waiting message, oldest first; they are gone from the mailbox afterwards."""
        key = outbox_key(kind, value)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.lrange(key, 0, -1)
            pipe.delete(key)
            raw, _ = await pipe.execute()
        messages = []
        for item in raw or ():
            try:
                message = json.loads(item)
            except (TypeError, ValueError):
                continue
            if isinstance(message, dict):
                messages.append(message)
        return messages

    async def count(self, kind: str, value: str) -> int:
        return int(await self.client.llen(outbox_key(kind, value)))
