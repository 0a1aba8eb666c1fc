"""Calling a messaging provider's API (WhatsApp Graph API, Telegram Bot API): timeouts, retries, clear errors.

A request is retried on 429 and 5xx answers and on network errors, waiting `Retry-After`
when the provider names it, otherwise exponential backoff with jitter; any other 4xx is
a mistake on our side and fails at once. The base URL is configurable so tests run
against fake providers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, Dict, Optional

import aiohttp

from connectors.errors import ConnectorError

logger = logging.getLogger(__name__)


class OutboundError(ConnectorError):
    """The provider refused a request or could not be reached after every attempt."""

    def __init__(self, message: str, status: Optional[int] = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    timeout: float = 10.0  # seconds per attempt
    backoff: float = 0.5  # first wait; doubles each time
    max_wait: float = 8.0


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class ProviderClient:
    """One aiohttp session per connector, created on first use (inside the server's loop)."""

    def __init__(self, base_url: str, headers: Optional[Dict[str, str]] = None, policy: RetryPolicy = RetryPolicy()) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.policy = policy
        self._session: Optional[aiohttp.ClientSession] = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self.headers)
        return self._session

    async def post_json(self, path: str, payload: Dict[str, Any]) -> Any:
        """POST `payload` to base_url + path; the decoded JSON answer, or OutboundError."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        last: Optional[str] = None
        for attempt in range(1, self.policy.attempts + 1):
            wait: Optional[float] = None
            try:
                timeout = aiohttp.ClientTimeout(total=self.policy.timeout)
                async with self._client().post(url, json=payload, timeout=timeout) as response:
                    body = await _body(response)
                    if response.status < 300:
                        return body
                    if response.status not in RETRY_STATUSES:
                        raise OutboundError(f"{url} answered {response.status}: {str(body)[:300]}", response.status, body)
                    last = f"{response.status}: {str(body)[:200]}"
                    wait = _retry_after(response.headers.get("Retry-After"))
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.policy.attempts:
                delay = wait if wait is not None else self._backoff(attempt)
                logger.warning("%s failed (%s); attempt %d of %d in %.1fs", url, last, attempt + 1, self.policy.attempts, delay)
                await asyncio.sleep(delay)
        raise OutboundError(f"{url} failed after {self.policy.attempts} attempts ({last})")

    def _backoff(self, attempt: int) -> float:
        base = min(self.policy.max_wait, self.policy.backoff * 2 ** (attempt - 1))
        return base * random.uniform(0.5, 1.0)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _body(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:
        return (await response.text())[:1000]


def _retry_after(value: Optional[str], cap: float = 60.0) -> Optional[float]:
    try:
        return min(cap, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None
