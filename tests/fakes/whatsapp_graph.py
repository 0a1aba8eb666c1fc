"""A stand-in for Meta's Graph API (WhatsApp Cloud API) over real HTTP, and webhook payloads as Meta sends them.

`FakeGraph` serves POST /<version>/<phone_number_id>/messages on 127.0.0.1: it checks the
bearer token (401, OAuthException code 190), validates the message (400, code 100), records
what it accepted and answers as the Graph API does. `fail_next(n, status)` makes the next n
requests fail with 429 (code 130429, rate limit) or 5xx (code 2, service unavailable).

The payload helpers build `whatsapp_business_account` webhook notifications (text, reply
button, list reply, image, sticker, voice note, statuses) and `signed` encodes one as Meta
does (compact JSON, non-ASCII escaped) with its `X-Hub-Signature-256` header.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import re
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

from aiohttp import web

from tests.conftest import free_port

WABA_ID = "102290129340398"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_NUMBER = "15550783881"
ACCESS_TOKEN = "EAAGm0PX4ZCpsBAtest-token"
APP_SECRET = "9f86d081884c7d659a2feaa0c55ad015"
VERIFY_TOKEN = "engage-verify-4d2c"

_NUMBER = re.compile(r"^\+?[1-9][0-9]{6,14}$")
_counter = itertools.count(1)


def _graph_error(message: str, code: int, kind: str = "OAuthException", subcode: Optional[int] = None) -> Dict[str, Any]:
    error: Dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": uuid.uuid4().hex[:11].upper()}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


class InvalidMessage(ValueError):
    pass


def validate_message(payload: Any, phone_number_id: str) -> None:
    """Raise InvalidMessage as the Messages API would answer (error code 100)."""

    def need(condition: bool, what: str) -> None:
        if not condition:
            raise InvalidMessage(what)

    need(isinstance(payload, dict), "The request body must be a JSON object")
    need(payload.get("messaging_product") == "whatsapp", "Param messaging_product must be 'whatsapp'")
    need(payload.get("recipient_type", "individual") == "individual", "Param recipient_type is invalid")
    need(isinstance(payload.get("to"), str) and bool(_NUMBER.match(payload["to"])), "Param to must be a phone number")
    kind = payload.get("type", "text")
    need(kind in ("text", "interactive", "image", "template"), f"Param type '{kind}' is not supported by this fake")
    if kind == "template":
        template = payload.get("template")
        need(isinstance(template, dict) and isinstance(template.get("name"), str) and bool(template["name"]), "Param template['name'] is required")
        language = template.get("language")
        need(isinstance(language, dict) and isinstance(language.get("code"), str) and bool(language["code"]), "Param template['language']['code'] is required")
        for component in template.get("components") or []:
            need(isinstance(component, dict) and component.get("type") in ("header", "body", "button"), "Template component type must be header, body or button")
            for parameter in component.get("parameters") or []:
                need(isinstance(parameter, dict) and parameter.get("type") == "text" and isinstance(parameter.get("text"), str), "Template parameters must be text here")
                need("\n" not in parameter["text"] and "\t" not in parameter["text"] and len(parameter["text"]) <= 1024,
                     "(#132018) Template parameter text cannot have new lines, tabs or more than 1024 characters")
    elif kind == "text":
        text = payload.get("text")
        need(isinstance(text, dict) and isinstance(text.get("body"), str), "Param text['body'] is required")
        need(0 < len(text["body"]) <= 4096, "Param text['body'] must be 1 to 4096 characters")
    elif kind == "image":
        image = payload.get("image")
        need(isinstance(image, dict) and bool(image.get("link") or image.get("id")), "Param image must have link or id")
    else:
        interactive = payload.get("interactive")
        need(isinstance(interactive, dict), "Param interactive is required")
        body = interactive.get("body")
        need(isinstance(body, dict) and isinstance(body.get("text"), str) and 0 < len(body["text"]) <= 1024,
             "Param interactive['body']['text'] must be 1 to 1024 characters")
        action = interactive.get("action")
        need(isinstance(action, dict), "Param interactive['action'] is required")
        if interactive.get("type") == "button":
            buttons = action.get("buttons")
            need(isinstance(buttons, list) and 1 <= len(buttons) <= 3, "Param interactive['action']['buttons'] must have 1 to 3 buttons")
            titles, ids = [], []
            for button in buttons:
                need(isinstance(button, dict) and button.get("type") == "reply", "Button type must be reply")
                reply = button.get("reply")
                need(isinstance(reply, dict), "Param reply is required")
                need(isinstance(reply.get("id"), str) and 0 < len(reply["id"]) <= 256, "Button id must be 1 to 256 characters")
                need(isinstance(reply.get("title"), str) and 0 < len(reply["title"]) <= 20, "Button title must be 1 to 20 characters")
                titles.append(reply["title"])
                ids.append(reply["id"])
            need(len(set(titles)) == len(titles) and len(set(ids)) == len(ids), "Button titles and ids must be unique")
        elif interactive.get("type") == "list":
            need(isinstance(action.get("button"), str) and 0 < len(action["button"]) <= 20, "List button text must be 1 to 20 characters")
            sections = action.get("sections")
            need(isinstance(sections, list) and 1 <= len(sections) <= 10, "A list needs 1 to 10 sections")
            rows = [row for section in sections if isinstance(section, dict) for row in section.get("rows") or []]
            need(1 <= len(rows) <= 10, "A list needs 1 to 10 rows in all")
            need(len(sections) == 1 or all(isinstance(s, dict) and s.get("title") for s in sections), "Sections need titles when there are several")
            for row in rows:
                need(isinstance(row, dict), "A row must be an object")
                need(isinstance(row.get("id"), str) and 0 < len(row["id"]) <= 200, "Row id must be 1 to 200 characters")
                need(isinstance(row.get("title"), str) and 0 < len(row["title"]) <= 24, "Row title must be 1 to 24 characters")
                need(len(row.get("description", "")) <= 72, "Row description must be at most 72 characters")
            need(len({row["id"] for row in rows}) == len(rows), "Row ids must be unique")
        else:
            raise InvalidMessage(f"Interactive type '{interactive.get('type')}' is not supported by this fake")


class FakeGraph:
    """Use as `async with FakeGraph() as graph:`; `graph.base_url` is the api_base_url."""

    def __init__(self, access_token: str = ACCESS_TOKEN, phone_number_id: str = PHONE_NUMBER_ID) -> None:
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.sent: List[Dict[str, Any]] = []  # accepted message payloads, in order
        self.requests: List[Tuple[int, Any]] = []  # (status answered, payload) for every request
        self._failures: List[int] = []
        self.closed_windows: set = set()  # numbers whose 24-hour customer-service window has closed
        self._runner: Optional[web.AppRunner] = None
        self.base_url = ""

    def close_window(self, number: str) -> None:
        """Outside the 24-hour window only a template may be sent to `number` (error 131047 otherwise)."""
        self.closed_windows.add(number.lstrip("+"))

    def fail_next(self, count: int, status: int = 429) -> None:
        self._failures.extend([status] * count)

    async def wait_for(self, count: int, timeout: float = 10.0) -> List[Dict[str, Any]]:
        """The accepted messages once there are at least `count`."""
        deadline = time.monotonic() + timeout
        while len(self.sent) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} message(s) at the fake Graph API, got {len(self.sent)}: {self.sent}")
            await asyncio.sleep(0.02)
        return self.sent

    async def __aenter__(self) -> "FakeGraph":
        app = web.Application()
        app.router.add_post("/{version}/{phone_number_id}/messages", self._messages)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _answer(self, status: int, body: Dict[str, Any], payload: Any) -> web.Response:
        self.requests.append((status, payload))
        return web.json_response(body, status=status)

    async def _messages(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return self._answer(401, _graph_error("Invalid OAuth access token - Cannot parse access token", 190), payload)
        if not re.fullmatch(r"v\d+\.\d+", request.match_info["version"]):
            return self._answer(400, _graph_error(f"Unknown path components: /{request.match_info['version']}", 2500), payload)
        if request.match_info["phone_number_id"] != self.phone_number_id:
            message = (
                f"Unsupported post request. Object with ID '{request.match_info['phone_number_id']}' does not exist, "
                "cannot be loaded due to missing permissions, or does not support this operation."
            )
            return self._answer(400, _graph_error(message, 100, "GraphMethodException", 33), payload)
        if self._failures:
            status = self._failures.pop(0)
            if status == 429:
                body = _graph_error("(#130429) Rate limit hit", 130429)
            else:
                body = _graph_error("An unexpected error has occurred. Please retry your request later.", 2, "OAuthException")
            return self._answer(status, body, payload)
        try:
            validate_message(payload, self.phone_number_id)
        except InvalidMessage as exc:
            return self._answer(400, _graph_error(f"(#100) {exc}", 100), payload)
        if payload["to"].lstrip("+") in self.closed_windows and payload.get("type", "text") != "template":
            message = "(#131047) Re-engagement message: more than 24 hours have passed since the recipient last replied; send a template"
            return self._answer(400, _graph_error(message, 131047), payload)
        self.sent.append(payload)
        to = payload["to"]
        answer = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
            "messages": [{"id": f"wamid.HBgL{uuid.uuid4().hex.upper()}"}],
        }
        return self._answer(200, answer, payload)


# --- webhook payloads, as Meta sends them -------------------------------------------------------


def new_message_id() -> str:
    return f"wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQz{next(_counter):06d}{uuid.uuid4().hex[:12].upper()}AA=="


def notification(value: Dict[str, Any], phone_number_id: str = PHONE_NUMBER_ID) -> Dict[str, Any]:
    """The envelope around one `messages` field change."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": phone_number_id},
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def inbound(
    sender: str,
    kind: str,
    content: Dict[str, Any],
    *,
    name: str = "Ada Lovelace",
    message_id: Optional[str] = None,
    context: Optional[Dict[str, Any]] = None,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> Dict[str, Any]:
    message: Dict[str, Any] = {"from": sender, "id": message_id or new_message_id(), "timestamp": str(int(time.time()))}
    if context is not None:
        message["context"] = context
    message["type"] = kind
    message[kind] = content
    return notification(
        {"contacts": [{"profile": {"name": name}, "wa_id": sender}], "messages": [message]}, phone_number_id
    )


def text_message(sender: str, body: str, **kwargs: Any) -> Dict[str, Any]:
    return inbound(sender, "text", {"body": body}, **kwargs)


def button_reply(sender: str, button_id: str, title: str, **kwargs: Any) -> Dict[str, Any]:
    kwargs.setdefault("context", {"from": DISPLAY_NUMBER, "id": new_message_id()})
    return inbound(sender, "interactive", {"type": "button_reply", "button_reply": {"id": button_id, "title": title}}, **kwargs)


def list_reply(sender: str, row_id: str, title: str, description: str = "", **kwargs: Any) -> Dict[str, Any]:
    kwargs.setdefault("context", {"from": DISPLAY_NUMBER, "id": new_message_id()})
    reply = {"id": row_id, "title": title, **({"description": description} if description else {})}
    return inbound(sender, "interactive", {"type": "list_reply", "list_reply": reply}, **kwargs)


def _media_id() -> str:
    return str(1_000_000_000_000_000 + next(_counter))


def image_message(sender: str, caption: str = "", **kwargs: Any) -> Dict[str, Any]:
    image = {"mime_type": "image/jpeg", "sha256": hashlib.sha256(b"img").hexdigest(), "id": _media_id()}
    if caption:
        image["caption"] = caption
    return inbound(sender, "image", image, **kwargs)


def sticker_message(sender: str, **kwargs: Any) -> Dict[str, Any]:
    sticker = {"mime_type": "image/webp", "sha256": hashlib.sha256(b"sticker").hexdigest(), "id": _media_id(), "animated": False}
    return inbound(sender, "sticker", sticker, **kwargs)


def voice_message(sender: str, **kwargs: Any) -> Dict[str, Any]:
    audio = {"mime_type": "audio/ogg; codecs=opus", "sha256": hashlib.sha256(b"voice").hexdigest(), "id": _media_id(), "voice": True}
    return inbound(sender, "audio", audio, **kwargs)


def statuses(recipient: str, status: str = "delivered", message_id: Optional[str] = None) -> Dict[str, Any]:
    """A delivery receipt for one of our messages (no `messages`, no `contacts`)."""
    now = int(time.time())
    receipt: Dict[str, Any] = {
        "id": message_id or new_message_id(),
        "status": status,
        "timestamp": str(now),
        "recipient_id": recipient,
        "conversation": {"id": uuid.uuid4().hex, "origin": {"type": "service"}},
        "pricing": {"billable": True, "pricing_model": "CBP", "category": "service"},
    }
    if status == "sent":
        receipt["conversation"]["expiration_timestamp"] = str(now + 86400)
    return notification({"statuses": [receipt]})


def encode(payload: Any) -> bytes:
    """Compact JSON with non-ASCII escaped, as Meta sends it."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def signature(body: bytes, app_secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signed(payload: Any, app_secret: str = APP_SECRET) -> Tuple[bytes, Dict[str, str]]:
    """The body and headers of Meta's POST for `payload`."""
    body = encode(payload)
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": signature(body, app_secret)}
