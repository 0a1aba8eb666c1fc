"""Asking the analytics service which idea theme a new idea joins (POST /ideas/match), with a timeout.

The service keeps the themes and the encoder loaded; the conversation only needs its answer. Any
failure (service down, slow, an error) is None: the customer then gets the plain thank-you, never
a claim about other customers that was not checked.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any, Optional

import aiohttp

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:5060"


def analytics_url() -> str:
    return (os.environ.get("ENGAGE_ANALYTICS_URL") or f"http://127.0.0.1:{os.environ.get('ENGAGE_ANALYTICS_PORT', '5060')}").rstrip("/")


@dataclass(frozen=True)
class ThemeMatch:
    theme: str
    how: str  # vote (a near duplicate) or joined
    label: str
    others: int  # other customers in the theme


class IdeaMatcher:
    def __init__(self, url: Optional[str] = None, timeout: float = 3.0, token: Optional[str] = None) -> None:
        self._url = url
        self._timeout = timeout
        self._token = token

    async def match(self, text: str, customer: str) -> Optional[ThemeMatch]:
        url = f"{self._url or analytics_url()}/ideas/match"
        token = self._token or os.environ.get("ENGAGE_ACTION_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout)) as session:
                async with session.post(url, json={"text": text, "customer": customer}, headers=headers) as response:
                    if response.status != 200:
                        logger.warning("idea match: %s answered %d: %s", url, response.status, (await response.text())[:200])
                        return None
                    found: Any = await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            logger.warning("idea match: %s did not answer (%s); the idea is stored without telling of others", url, type(exc).__name__)
            return None
        if not isinstance(found, dict) or found.get("how") not in ("vote", "joined") or not found.get("theme"):
            return None
        return ThemeMatch(str(found["theme"]), str(found["how"]), str(found.get("label") or ""), int(found.get("others") or 0))
