"""Processing a delivery once: providers retry webhooks, and a retried message must not be answered twice."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connectors.identity import IdentityResolver

logger = logging.getLogger(__name__)

PREFIX = "engage:dedup:"
TTL_SECONDS = 3 * 24 * 3600  # WhatsApp retries for up to 7 days at decreasing frequency; 3 covers the burst


class Deduplicator:
    """Remembers message ids in Redis (SET NX with expiry) through the connectors' shared client."""

    def __init__(self, resolver: "IdentityResolver", ttl: int = TTL_SECONDS) -> None:
        self._resolver = resolver
        self._ttl = ttl

    async def first_time(self, channel: str, message_id: str) -> bool:
        """True the first time (channel, message_id) is seen. When Redis is down, let it through."""
        # surrogatepass: an id holding a lone surrogate (a forged escape) still makes a distinct key
        key = f"{PREFIX}{channel}:{message_id[:200]}".encode("utf-8", "surrogatepass")
        try:
            return bool(await self._resolver.client.set(key, b"1", nx=True, ex=self._ttl))
        except Exception as exc:  # better a rare double answer than a lost message
            logger.warning("dedup unavailable (%s); handling %s %s without the check", exc, channel, message_id[:80])
            return True
