"""Which customer a message comes from: the connectors' side of analytics.customers.

Each connector hands over the identities its channel has verified (a web-chat session,
a portal JWT's user and e-mail, a WhatsApp number, a Telegram user id); the customer id
that comes back is the Rasa conversation id, so one customer has one conversation
whichever channel they write on.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional, Sequence, Tuple

from analytics.customers import EVIDENCE, CustomerDirectory, Identity, close

logger = logging.getLogger(__name__)

REDIS_URL_ENV = "REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
TIMEOUT = 2.0
# While Redis is away (restarted by `make run`'s supervisor in about a second) a message
# waits for it, as in the tracker and lock stores (bot/stores.py), instead of failing.
OUTAGE_WAIT = 10.0


class IdentityUnavailable(RuntimeError):
    """The customer directory (Redis) could not be reached."""


class IdentityResolver:
    """One lazily created Redis client and directory per process (connectors share it)."""

    def __init__(self, redis_url: Optional[str] = None) -> None:
        self._redis_url = redis_url
        self._directory: Optional[CustomerDirectory] = None
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The connectors' redis.asyncio client (customer directory, dedup)."""
        if self._client is None:
            from analytics.redis_connect import connect

            url = self._redis_url or os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL
            self._client = connect(url, TIMEOUT, outage_wait=OUTAGE_WAIT)
        return self._client

    @property
    def directory(self) -> CustomerDirectory:
        if self._directory is None:
            self._directory = CustomerDirectory(self.client)
        return self._directory

    async def customer_for(self, identities: Sequence[Identity]) -> str:
        """The customer id for identities this channel has verified (each with its kind's evidence)."""
        evidence: Sequence[Tuple[Identity, str]] = [(identity, EVIDENCE[identity.kind]) for identity in identities]
        try:
            resolution = await self.directory.resolve(evidence)
        except Exception as exc:  # redis errors, timeouts: the message cannot be placed
            logger.error("customer directory unavailable: %s", exc)
            raise IdentityUnavailable(str(exc)) from exc
        if resolution.merged_from:
            logger.info("customers %s merged into %s on %s", ", ".join(resolution.merged_from), resolution.customer_id, [str(i) for i in identities])
        return resolution.customer_id

    async def close(self) -> None:
        if self._client is not None:
            await close(self._client)
            self._client = None
            self._directory = None


_shared: Optional[IdentityResolver] = None


def shared_resolver() -> IdentityResolver:
    """The process-wide resolver (created on first use)."""
    global _shared
    if _shared is None:
        _shared = IdentityResolver()
    return _shared
