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
from typing import Any, Dict, Optional, Sequence

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
    """One aiohttp session per connector, created on first use (inside the server's loop).

    `label` names the provider in logs and errors instead of the URL, and every string in
    `secrets` is masked in them: some providers put credentials in the URL (Telegram's bot
    token). Subclasses read provider-specific hints with `wait_from_body` and `describe`.
    """

    def __init__(
        self,
        base_url: str,
        headers: Optional[Dict[str, str]] = None,
        policy: RetryPolicy = RetryPolicy(),
        label: str = "",
        secrets: Sequence[str] = (),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.policy = policy
        self.label = label
        self.secrets = tuple(secret for secret in secrets if secret)
        self._session: Optional[aiohttp.ClientSession] = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self.headers)
        return self._session

    def wait_from_body(self, body: Any) -> Optional[float]:
        """Seconds a throttled answer asks us to wait, when the provider says so in the body."""
        return None

    def describe(self, body: Any) -> str:
        return str(body)[:300]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<secret>")
        return text

    async def post_json(self, path: str, payload: Dict[str, Any]) -> Any:
        """POST `payload` to base_url + path; the decoded JSON answer, or OutboundError."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        shown = self.redact(f"{self.label} {path}" if self.label else url)
        last: Optional[str] = None
        status: Optional[int] = None
        body: Any = None
        for attempt in range(1, self.policy.attempts + 1):
            wait: Optional[float] = None
            try:
                timeout = aiohttp.ClientTimeout(total=self.policy.timeout)
                async with self._client().post(url, json=payload, timeout=timeout) as response:
                    status, body = response.status, await _body(response)
                    if status < 300:
                        return body
                    if status not in RETRY_STATUSES:
                        raise OutboundError(f"{shown} answered {status}: {self.redact(self.describe(body))}", status, body)
                    last = f"{status}: {self.redact(self.describe(body))[:200]}"
                    wait = retry_after(response.headers.get("Retry-After"))
                    if wait is None:
                        wait = self.wait_from_body(body)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                status, body = None, None
                last = self.redact(f"{type(exc).__name__}: {exc}")
            if attempt < self.policy.attempts:
                delay = wait if wait is not None else self._backoff(attempt)
                logger.warning("%s failed (%s); attempt %d of %d in %.1fs", shown, last, attempt + 1, self.policy.attempts, delay)
                await asyncio.sleep(delay)
        raise OutboundError(f"{shown} failed after {self.policy.attempts} attempts ({last})", status, body)

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


def retry_after(value: Any, cap: float = 60.0) -> Optional[float]:
    """A wait in seconds from a Retry-After header or a provider's retry_after field (capped)."""
    if value is None:
        return None
    try:
        return min(cap, max(0.0, float(str(value))))
    except ValueError:
        return None
