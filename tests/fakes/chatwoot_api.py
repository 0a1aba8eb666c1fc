"""A fake Chatwoot on 127.0.0.1: the application API an Agent Bot calls, and the webhooks Chatwoot sends it.

Follows Chatwoot's documented shapes: `POST /api/v1/accounts/{account_id}/conversations/{id}/messages`
(`content`, `message_type`, `private`, `content_type`, `content_attributes`; `input_select` needs
`items` of `title` and `value`) and `POST .../toggle_status` (`status`: open, resolved, pending,
snoozed), both authenticated with the `api_access_token` header (401 otherwise, as Chatwoot
answers); `message_created` webhook payloads as Chatwoot posts them to an Agent Bot.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any, Dict, List, Optional, Tuple

from aiohttp import web

from tests.conftest import free_port

BOT_TOKEN = "cw-bot-token-0123456789"
WEBHOOK_TOKEN = "cw-webhook-token-0123456789"
STATUSES = ("open", "resolved", "pending", "snoozed")
CONTENT_TYPES = ("text", "input_select", "cards", "form", "article", "input_email", "input_csat")
_ids = itertools.count(1000)


class FakeChatwoot:
    def __init__(self, token: str = BOT_TOKEN) -> None:
        self.token = token
        self.sent: List[Dict[str, Any]] = []  # accepted messages, with "conversation" and "account" added
        self.status: Dict[Tuple[int, int], str] = {}  # (account, conversation) -> status set through toggle_status
        self.refused: List[Tuple[int, Any]] = []
        self._runner: Optional[web.AppRunner] = None
        self.base_url = ""

    async def start(self) -> "FakeChatwoot":
        app = web.Application()
        app.router.add_post("/api/v1/accounts/{account}/conversations/{conversation}/messages", self._message)
        app.router.add_post("/api/v1/accounts/{account}/conversations/{conversation}/toggle_status", self._toggle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def to(self, account: int, conversation: int) -> List[Dict[str, Any]]:
        return [m for m in list(self.sent) if (m["account"], m["conversation"]) == (account, conversation)]

    async def wait_for(self, account: int, conversation: int, count: int, timeout: float = 30.0) -> List[Dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.to(account, conversation)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} message(s) in Chatwoot conversation {conversation}, got {self.to(account, conversation)}")
            await asyncio.sleep(0.02)
        return self.to(account, conversation)

    def _ids(self, request: web.Request) -> Optional[Tuple[int, int]]:
        try:
            return int(request.match_info["account"]), int(request.match_info["conversation"])
        except ValueError:
            return None

    async def _authorised(self, request: web.Request) -> Optional[web.Response]:
        if request.headers.get("api_access_token") != self.token:
            return web.json_response({"errors": ["You need to sign in or sign up before continuing."]}, status=401)
        return None

    async def _message(self, request: web.Request) -> web.Response:
        refused = await self._authorised(request)
        ids = self._ids(request)
        try:
            body = await request.json()
        except ValueError:
            body = None
        problem = refused or (None if ids is not None else web.json_response({"error": "Resource could not be found"}, status=404))
        if problem is None:
            reason = _invalid(body)
            if reason:
                problem = web.json_response({"message": reason}, status=422)
        if problem is not None:
            self.refused.append((problem.status, body))
            return problem
        account, conversation = ids
        self.sent.append({**body, "account": account, "conversation": conversation})
        return web.json_response({
            "id": next(_ids), "content": body.get("content"), "inbox_id": 1, "conversation_id": conversation, "message_type": 1,
            "content_type": body.get("content_type", "text"), "content_attributes": body.get("content_attributes", {}),
            "created_at": int(time.time()), "private": bool(body.get("private", False)), "source_id": None,
            "sender": {"id": 1, "name": "Engage", "type": "agent_bot"},
        })

    async def _toggle(self, request: web.Request) -> web.Response:
        refused = await self._authorised(request)
        if refused is not None:
            return refused
        ids = self._ids(request)
        body = await request.json()
        if ids is None or not isinstance(body, dict) or body.get("status") not in STATUSES:
            return web.json_response({"message": "status must be one of open, resolved, pending, snoozed"}, status=422)
        self.status[ids] = body["status"]
        return web.json_response({"meta": {}, "payload": {"success": True, "current_status": body["status"], "conversation_id": ids[1]}})


def _invalid(body: Any) -> str:
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if not isinstance(body.get("content"), str) or not body["content"].strip():
        return "content can't be blank"
    if body.get("message_type", "outgoing") not in ("outgoing", "incoming"):
        return "message_type must be outgoing or incoming"
    if "private" in body and not isinstance(body["private"], bool):
        return "private must be true or false"
    kind = body.get("content_type", "text")
    if kind not in CONTENT_TYPES:
        return f"content_type {kind!r} is not supported"
    if kind == "input_select":
        items = (body.get("content_attributes") or {}).get("items")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) and isinstance(i.get("title"), str) and isinstance(i.get("value"), str) for i in items):
            return "input_select needs content_attributes.items of {title, value}"
    return ""


def message_created(account: int, conversation: int, text: str, *, status: str = "pending", message_type: str = "incoming",
                    private: bool = False, message_id: Optional[int] = None) -> Dict[str, Any]:
    """A `message_created` event as Chatwoot posts it to an Agent Bot's outgoing URL."""
    return {
        "event": "message_created",
        "id": message_id if message_id is not None else next(_ids),
        "content": text,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "message_type": message_type,
        "content_type": "text",
        "content_attributes": {},
        "source_id": None,
        "private": private,
        "sender": {"id": 42, "name": "Dana Fox", "email": "dana@acme.example", "type": "contact"},
        "inbox": {"id": 7, "name": "Website"},
        "account": {"id": account, "name": "Quillstack"},
        "conversation": {
            "id": conversation, "inbox_id": 7, "status": status, "can_reply": True, "channel": "Channel::WebWidget",
            "contact_inbox": {"id": 9, "contact_id": 42, "inbox_id": 7, "source_id": "b1e7"},
            "meta": {"sender": {"id": 42, "name": "Dana Fox"}, "assignee": None},
            "additional_attributes": {}, "unread_count": 1, "agent_last_seen_at": 0, "contact_last_seen_at": 0, "timestamp": int(time.time()),
        },
    }
