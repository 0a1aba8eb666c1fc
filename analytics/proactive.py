"""Send a message to a customer on their own channel, from the 3.11 side (staff console, notifications).

The client of the Rasa server's proactive endpoint (connectors/proactive.py, where the wire
format and every answer are described). Use one per process:

    client = ProactiveClient(rasa_url, token)          # token: ENGAGE_PROACTIVE_TOKEN
    outcome = await client.send(
        "C-3f9a1c2b4d5e6f70", "Your idea shipped: ...",
        author=Author("system", "ideas", "Quillstack product team"),
        message_id=f"idea-shipped:TH-4:C-3f9a1c2b4d5e6f70",   # the same id is never sent twice
    )
    if not outcome.ok:
        print(outcome.reason)                          # e.g. WhatsApp refused it, and why
    await client.close()

`send` never raises for a refusal: `Outcome.status` is `delivered`, `queued` (the customer gets
it on their next connect) or `failed` with `reason` (also for a Rasa server that does not answer).
`control="pause"` / `"resume"` pause or resume the bot in the same step as the message (or alone,
with `text=""`). A delivered or queued message is in the tracker and the interaction log as a
`bot` event whose metadata names the author.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import aiohttp

DELIVERED = "delivered"
QUEUED = "queued"
FAILED = "failed"


@dataclass(frozen=True)
class Author:
    role: str  # "agent" or "system"
    id: str
    name: str


@dataclass(frozen=True)
class Outcome:
    status: str
    channel: str = ""
    reason: str = ""
    paused: Optional[bool] = None
    repeat: bool = False
    http_status: int = 0

    @property
    def ok(self) -> bool:
        return self.status in (DELIVERED, QUEUED)


class ProactiveClient:
    def __init__(self, rasa_url: str, token: str, timeout: float = 60.0) -> None:
        # 60 s: a WhatsApp or Telegram send is retried with backoff before it is called refused.
        self.url = rasa_url.rstrip("/") + "/webhooks/proactive/send"
        self.token = token
        self.timeout = timeout
        self._session: Optional[aiohttp.ClientSession] = None

    async def send(
        self,
        conversation_id: str,
        text: str,
        *,
        author: Author,
        buttons: Optional[List[Dict[str, str]]] = None,
        message_id: str = "",
        channel: Optional[str] = None,
        control: Optional[str] = None,
    ) -> Outcome:
        body: Dict[str, Any] = {"conversation_id": conversation_id, "text": text,
                                "author": {"role": author.role, "id": author.id, "name": author.name}}
        if buttons:
            body["buttons"] = buttons
        if message_id:
            body["message_id"] = message_id
        if channel:
            body["channel"] = channel
        if control:
            body["control"] = control
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self._session.post(self.url, json=body, headers={"Authorization": f"Bearer {self.token}"}) as answer:
                status = answer.status
                try:
                    data = await answer.json(content_type=None)
                except ValueError:
                    data = {"reason": (await answer.text())[:300]}
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return Outcome(FAILED, reason=f"The Rasa server did not answer ({type(exc).__name__}: {exc}); "
                                          "check that it is running (make run) and try again.")
        if not isinstance(data, dict):
            data = {}
        reason = str(data.get("reason") or data.get("message") or "")
        if status == 401:
            reason = "The Rasa server refused the proactive token: ENGAGE_PROACTIVE_TOKEN differs between the console and Rasa."
        return Outcome(
            status=str(data.get("status") or FAILED) if status in (200, 502) else FAILED,
            channel=str(data.get("channel") or ""),
            reason=reason,
            paused=data.get("paused"),
            repeat=bool(data.get("repeat")),
            http_status=status,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
