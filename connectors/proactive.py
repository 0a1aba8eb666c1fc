"""Proactive delivery: a message nobody asked for (a staff reply, a notification) reaches a customer
on their own channel and lands in the Rasa tracker and the interaction log.

API (Rasa server, `connectors.proactive.ProactiveInput` in credentials.yml, on when
`ENGAGE_PROACTIVE_TOKEN` is set; `make run` generates it):

    POST /webhooks/proactive/send
    Authorization: Bearer $ENGAGE_PROACTIVE_TOKEN
    {"conversation_id": "C-3f9a1c2b4d5e6f70",          # the Rasa conversation (customer) id
     "text": "Hi, Dana here from support ...",         # 1-4096 characters; optional with "control"
     "buttons": [{"title": "Great", "payload": "/csat{\"csat_score\":\"5\"}"}],   # optional, <= 10
     "author": {"role": "agent", "id": "dana", "name": "Dana"},   # role: agent or system
     "message_id": "0f6c...",                          # optional idempotency key (<= 128 chars)
     "channel": "whatsapp",                            # optional; default: the customer's latest channel
     "control": "pause" | "resume"}                    # optional: pause or resume the bot in the same step

Answers (JSON): 200 `{"status": "delivered" | "queued", "channel", "message_id", "paused"}`
(queued: the customer is not connected now, e.g. a closed web chat or the portal between polls,
and gets it on their next connect); 502 `{"status": "failed", "reason": ...}` when the channel
refuses it (WhatsApp or Telegram said no after the retries, no number linked, the REST channel
cannot push): the message is then *not* in the tracker, and a `reply_undelivered` record with
the text and the author is in the log; 400 bad request (what is wrong in `message`), 401 bad
token, 404 no such conversation, 409 the same `message_id` is being sent right now, 413 too
large, 503 the model is not loaded. A repeated `message_id` answers what the first send answered
(`"repeat": true`) and sends nothing.

What happens, under the conversation's lock (so it never interleaves with a customer's turn):
the control event is appended (a form the bot was running ends on a pause; `ConversationPaused` keeps Rasa silent while a person owns the
conversation; it is in the Redis tracker, so it survives a restart and holds on every Rasa
process), the message goes out through the channel's own output, and a `BotUttered` with
`metadata.author` (role, id, name) and `metadata.delivery` is stored: the tracker and its log
entries are written in one transaction (bot/stores.py), so the log shows the agent's message
with the agent's name. The 3.11 side calls this with `analytics.proactive.ProactiveClient`.

A channel takes part by giving its input channel a method
`async proactive_output(conversation_id, report) -> OutputChannel`: an output that reaches the
customer without an incoming webhook and tells `report` what became of each message
(`delivered()`, `queued()`, `failed(reason)`); it raises `Unreachable` when it cannot.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Protocol

from rasa.core.channels.channel import InputChannel, OutputChannel
from rasa.shared.core.constants import REQUESTED_SLOT
from rasa.shared.core.events import ActiveLoop, BotUttered, ConversationPaused, ConversationResumed, Event, SlotSet
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from analytics.schema import REPLY_UNDELIVERED, SOURCE_CONNECTOR, LogEvent
from connectors.errors import ConnectorConfigError, RequestRejected
from connectors.identity import IdentityResolver, shared_resolver
from connectors.messages import normalise_text
from connectors.options import Options
from connectors.payload import load_json
from connectors.replies import publish
from connectors.requests import read_body

logger = logging.getLogger(__name__)

CHANNEL = "proactive"
DELIVERED = "delivered"
QUEUED = "queued"
FAILED = "failed"
ROLES = frozenset({"agent", "system"})
CONTROLS = {"pause": ConversationPaused, "resume": ConversationResumed}
MESSAGE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
MAX_BUTTONS = 10
SENT_PREFIX = "engage:proactive:sent:"
SENT_TTL = 24 * 3600
PENDING = "pending"


class Unreachable(Exception):
    """The customer cannot be reached on this channel (the reason is shown to staff)."""


class Report:
    """What became of one proactive message on one channel (an output may reach several sessions)."""

    def __init__(self) -> None:
        self.delivered_count = 0
        self.queued_count = 0
        self.failures: List[str] = []

    def delivered(self) -> None:
        self.delivered_count += 1

    def queued(self) -> None:
        self.queued_count += 1

    def failed(self, reason: str) -> None:
        self.failures.append(reason[:500])

    @property
    def status(self) -> str:
        if self.failures:
            return FAILED
        if self.delivered_count:
            return DELIVERED
        if self.queued_count:
            return QUEUED
        return FAILED

    @property
    def reason(self) -> str:
        if self.failures:
            return "; ".join(self.failures)
        return "" if self.status != FAILED else "the channel sent nothing"


class Proactive(Protocol):
    async def proactive_output(self, conversation_id: str, report: Report) -> OutputChannel: ...


@dataclass(frozen=True)
class Author:
    role: str
    id: str
    name: str

    def as_dict(self) -> Dict[str, str]:
        return {"role": self.role, "id": self.id, "name": self.name}


@dataclass
class SendRequest:
    conversation_id: str
    text: str
    buttons: List[Dict[str, str]]
    author: Author
    message_id: str
    channel: Optional[str]
    control: Optional[str]
    extra: Dict[str, Any] = field(default_factory=dict)


def parse_send(body: bytes, max_text_chars: int) -> SendRequest:
    """A checked send request; RequestRejected (400) naming the field otherwise."""
    data = load_json(body)
    if not isinstance(data, dict):
        raise RequestRejected(400, "not_an_object", "Send a JSON object with conversation_id, text and author.")
    unknown = sorted(set(data) - {"conversation_id", "text", "buttons", "author", "message_id", "channel", "control"})
    if unknown:
        raise RequestRejected(400, "unknown_fields", f"Unknown fields: {', '.join(unknown)[:200]}.", unknown[:10])
    conversation_id = data.get("conversation_id")
    if not isinstance(conversation_id, str) or not 1 <= len(conversation_id) <= 128 or not conversation_id.isprintable():
        raise RequestRejected(400, "invalid_conversation_id", "conversation_id must be the customer's conversation id (1-128 printable characters).", ["conversation_id"])
    control = data.get("control")
    if control is not None and (not isinstance(control, str) or control not in CONTROLS):
        raise RequestRejected(400, "invalid_control", "control must be 'pause' or 'resume' (or left out).", ["control"])
    text = data.get("text")
    if text is None and control is not None:
        text = ""
    if not isinstance(text, str) or (not text.strip() and control is None):
        raise RequestRejected(400, "empty_text", "text must be a non-empty string.", ["text"])
    if len(text) > max_text_chars:
        raise RequestRejected(400, "text_too_long", f"text is {len(text)} characters; at most {max_text_chars} go in one message.", ["text"])
    buttons = _buttons(data.get("buttons"))
    if buttons and not text.strip():
        raise RequestRejected(400, "empty_text", "Buttons need a text to go with them.", ["text"])
    author = _author(data.get("author"))
    message_id = data.get("message_id") or ""
    if not isinstance(message_id, str) or (message_id and not MESSAGE_ID.match(message_id)):
        raise RequestRejected(400, "invalid_message_id", "message_id must be 1-128 letters, digits or . _ : -", ["message_id"])
    channel = data.get("channel")
    if channel is not None and (not isinstance(channel, str) or not re.fullmatch(r"[a-z_]{1,32}", channel)):
        raise RequestRejected(400, "invalid_channel", "channel must be a channel name such as socketio, whatsapp, telegram or portal.", ["channel"])
    return SendRequest(conversation_id, normalise_text(text), buttons, author, message_id, channel, control)


def _buttons(raw: Any) -> List[Dict[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_BUTTONS:
        raise RequestRejected(400, "invalid_buttons", f"buttons must be a list of at most {MAX_BUTTONS} {{title, payload}} objects.", ["buttons"])
    buttons = []
    for button in raw:
        if not isinstance(button, dict) or not isinstance(button.get("title"), str) or not isinstance(button.get("payload"), str):
            raise RequestRejected(400, "invalid_buttons", "Each button needs a title and a payload (strings).", ["buttons"])
        if not button["title"].strip() or len(button["title"]) > 64 or len(button["payload"]) > 256:
            raise RequestRejected(400, "invalid_buttons", "A button title is 1-64 characters and its payload at most 256.", ["buttons"])
        buttons.append({"title": normalise_text(button["title"]), "payload": normalise_text(button["payload"])})
    return buttons


def _author(raw: Any) -> Author:
    if not isinstance(raw, dict):
        raise RequestRejected(400, "invalid_author", "author must be an object {role, id, name}.", ["author"])
    role, ident, name = raw.get("role"), raw.get("id"), raw.get("name")
    if not isinstance(role, str) or role not in ROLES:
        raise RequestRejected(400, "invalid_author", "author.role must be 'agent' or 'system'.", ["author"])
    for value, what in ((ident, "id"), (name, "name")):
        if not isinstance(value, str) or not 1 <= len(value) <= 80 or not value.isprintable():
            raise RequestRejected(400, "invalid_author", f"author.{what} must be 1-80 printable characters.", ["author"])
    return Author(str(role), normalise_text(str(ident)), normalise_text(str(name)))


class ProactiveInput(InputChannel):
    """`connectors.proactive.ProactiveInput` in credentials.yml: `token: ${ENGAGE_PROACTIVE_TOKEN}`."""

    OPTIONS = {"token": str, "max_text_chars": int, "max_body_bytes": int}
    REQUIRED = ("token",)
    ENV_HINT = {"token": "ENGAGE_PROACTIVE_TOKEN"}

    def __init__(
        self, *, token: str, max_text_chars: int = 4096, max_body_bytes: int = 64 * 1024, resolver: Optional[IdentityResolver] = None
    ) -> None:
        if len(token) < 32:
            raise ConnectorConfigError(f"{__name__}.ProactiveInput: 'token' must be at least 32 characters (ENGAGE_PROACTIVE_TOKEN)")
        self.token = token.encode("utf-8")
        self.max_text_chars = max_text_chars
        self.max_body_bytes = max_body_bytes
        self.resolver = resolver or shared_resolver()

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> "ProactiveInput":
        options = Options.read(f"{__name__}.ProactiveInput", credentials, cls.OPTIONS, cls.REQUIRED, cls.ENV_HINT)
        options.positive("max_text_chars", "max_body_bytes")
        return cls(**options.values)

    def blueprint(self, on_new_message: Any) -> Blueprint:
        blueprint = Blueprint("engage_proactive", __name__)

        @blueprint.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @blueprint.route("/send", methods=["POST"], stream=True)
        async def send(request: Request) -> HTTPResponse:
            try:
                self._check_token(request.headers.get("authorization"))
                wanted = parse_send(await read_body(request, self.max_body_bytes), self.max_text_chars)
            except RequestRejected as rejected:
                logger.info("proactive: rejected a request (%s): %s", rejected.code, rejected.detail)
                return response.json(rejected.body(), status=rejected.status, headers=rejected.headers())
            return await self.send(request.app, wanted)

        return blueprint

    def _check_token(self, authorization: Optional[str]) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        given = token.strip().encode("utf-8", "surrogateescape")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, self.token):
            raise RequestRejected(401, "invalid_token", "Send Authorization: Bearer $ENGAGE_PROACTIVE_TOKEN (the value the Rasa server was started with).")

    async def send(self, app: Sanic, wanted: SendRequest) -> HTTPResponse:
        """Deliver one message (and control event) as described in the module docstring."""
        agent = getattr(app.ctx, "agent", None)
        if agent is None or agent.tracker_store is None or agent.lock_store is None:
            return response.json({"status": FAILED, "reason": "The Rasa server has no model loaded yet; try again in a minute."}, status=503)
        client = self.resolver.client
        sent_key = SENT_PREFIX + wanted.message_id if wanted.message_id else None
        if sent_key is not None:
            if not await client.set(sent_key, PENDING, nx=True, ex=SENT_TTL):
                previous = await client.get(sent_key)
                previous = previous.decode() if isinstance(previous, bytes) else previous
                if previous == PENDING:
                    return response.json({"status": FAILED, "reason": "This message_id is being sent right now."}, status=409)
                return response.json({**json.loads(previous), "repeat": True})
        status, body = 500, {"status": FAILED, "reason": "internal error"}
        try:
            status, body = await self._send_locked(app, agent, wanted)
        finally:
            if sent_key is not None:
                if status in (200, 502):  # an outcome: a repeat answers the same
                    await client.set(sent_key, json.dumps(body), ex=SENT_TTL)
                else:
                    await client.delete(sent_key)
        return response.json(body, status=status)

    async def _send_locked(self, app: Sanic, agent: Any, wanted: SendRequest) -> "tuple[int, Dict[str, Any]]":
        async with agent.lock_store.lock(wanted.conversation_id):
            tracker = await agent.tracker_store.retrieve(wanted.conversation_id)
            if tracker is None:
                return 404, {"status": FAILED, "reason": f"There is no conversation {wanted.conversation_id}."}
            events: List[Event] = []
            if wanted.control == "pause" and tracker.active_loop_name:
                # A form the bot was running (e.g. asking how to reach the customer) ends: a person answers now.
                events += [ActiveLoop(None), SlotSet(REQUESTED_SLOT, None)]
            if wanted.control is not None:
                events.append(CONTROLS[wanted.control]())
            channel = wanted.channel or tracker.get_latest_input_channel() or ""
            result: Dict[str, Any] = {"channel": channel, "message_id": wanted.message_id}
            if wanted.text.strip():
                report = await self._deliver(app, channel, wanted)
                result.update(status=report.status)
                if report.status == FAILED:
                    result["reason"] = report.reason
                    self._record_undelivered(app, wanted, channel, report.reason)
                else:
                    metadata = {"author": wanted.author.as_dict(), "delivery": report.status, "proactive_message_id": wanted.message_id}
                    data = {"buttons": wanted.buttons} if wanted.buttons else None
                    events.append(BotUttered(wanted.text, data=data, metadata=metadata))
            else:
                result["status"] = DELIVERED  # a control alone
            for event in events:
                tracker.update(event)
            if events:
                await agent.tracker_store.save(tracker)
            result["paused"] = tracker.is_paused()
            return (502 if result["status"] == FAILED else 200), result

    async def _deliver(self, app: Sanic, channel: str, wanted: SendRequest) -> Report:
        report = Report()
        target = next((c for c in getattr(app.ctx, "input_channels", None) or [] if c.name() == channel), None)
        if target is None or not hasattr(target, "proactive_output"):
            report.failed(_unreachable_reason(channel))
            return report
        try:
            output = await target.proactive_output(wanted.conversation_id, report)
            message: Dict[str, Any] = {"text": wanted.text}
            if wanted.buttons:
                message["buttons"] = wanted.buttons
            if hasattr(output, "author"):
                output.author = wanted.author.name
            await output.send_response(wanted.conversation_id, message)
            if not getattr(output, "reports_delivery", False) and not report.failures:
                report.delivered()  # the provider accepted every part (a refusal calls report.failed)
        except Unreachable as exc:
            report.failed(str(exc))
        except Exception as exc:  # the staff member sees why; the log has the traceback
            logger.exception("proactive: sending to %s on %s failed", wanted.conversation_id, channel)
            report.failed(f"{type(exc).__name__}: {exc}")
        return report

    def _record_undelivered(self, app: Sanic, wanted: SendRequest, channel: str, reason: str) -> None:
        logger.warning("proactive: a message from %s to %s on %s was not delivered: %s", wanted.author.id, wanted.conversation_id, channel, reason)
        publish(app, LogEvent(
            type=REPLY_UNDELIVERED, conversation_id=wanted.conversation_id, source=SOURCE_CONNECTOR, channel=channel,
            text=wanted.text, metadata={"author": wanted.author.as_dict()},
            data={"message_type": "proactive", "error": reason[:500], "message_id": wanted.message_id},
        ))


def _unreachable_reason(channel: str) -> str:
    if not channel:
        return "The customer has not written on any channel yet, so there is nowhere to send it."
    if channel == "rest":
        return "The customer wrote on the REST channel, which only answers requests; it cannot receive a message it did not ask for."
    return f"The customer's channel ({channel}) cannot receive messages it did not ask for, or is not enabled on this server."
