"""WhatsApp over Meta's WhatsApp Cloud API (Graph API): webhook in, Messages API out.

Inbound (`/webhooks/whatsapp/webhook`):

* GET answers Meta's verification request (`hub.mode=subscribe`, `hub.verify_token`,
  `hub.challenge`) with the challenge when the token matches;
* POST checks `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the app secret)
  before anything is parsed, acknowledges at once with 200 (Meta retries webhooks that
  answer slowly) and handles the messages in a background task; one sender's messages
  are handled in the order they arrived. Delivery receipts (`statuses`) are ignored.
* Limits (`rate_limits`, connectors.limits): an address that posts too fast gets 429 with
  Retry-After; a sender who sends too fast, or whose queue is full, has the message dropped
  with a `message_dropped` record and is asked to slow down (at most every 30 s).
* A message id seen before is dropped (Meta redelivers); the sender's number is the
  verified identity, resolved to the customer id that is the Rasa conversation id.
* Text and interactive replies (button / list: their id is our payload, e.g.
  `/ask_pricing`) reach Rasa; over-long text and media get a polite refusal and a record.

Outbound (`WhatsAppOutput`): text (split at 4096 characters), reply buttons (up to 3),
a list (4 to 10), numbered text otherwise, images by link; failures after the retries
are logged, never raised into Rasa.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from functools import partial
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from analytics.customers import WHATSAPP, Identity, IdentityError
from analytics.schema import MESSAGE_REFUSED, UNSUPPORTED_MESSAGE
from connectors.dedup import Deduplicator
from connectors.delivery import (
    CountingOutput,
    OnNewMessage,
    Undelivered,
    deliver,
    drop_message,
    record_connector_event,
    undelivered_recorder,
)
from connectors.identity import IdentityResolver, IdentityUnavailable, shared_resolver
from connectors.limits import SENDER_RATE, WEBHOOK_KEYS, WEBHOOK_LIMITS, Limiter, RateLimits
from connectors.messages import APOLOGY_TEXT, EMPTY_TEXT, SLOW_DOWN_TEXT, TEXT_ONLY, normalise_text, split_text, too_long_text
from connectors.errors import RequestRejected
from connectors.options import Options
from connectors.outbound import OutboundError, ProviderClient, RetryPolicy
from connectors.payload import load_json
from connectors.requests import SenderQueues, client_address, read_body

logger = logging.getLogger(__name__)

CHANNEL = "whatsapp"
SIGNATURE_HEADER = "X-Hub-Signature-256"

# Limits of the Messages API (interactive reply buttons and list messages).
TEXT_LIMIT = 4096
INTERACTIVE_BODY_LIMIT = 1024
MAX_REPLY_BUTTONS = 3
BUTTON_TITLE_LIMIT = 20
BUTTON_ID_LIMIT = 256
MAX_LIST_ROWS = 10
ROW_TITLE_LIMIT = 24
ROW_ID_LIMIT = 200
ROW_DESCRIPTION_LIMIT = 72
LIST_BUTTON_TEXT = "Choose"

# Inbound types ignored without an answer: a reaction to one of our messages, a number change notice.
SILENT_TYPES = frozenset({"reaction", "system"})


class WhatsAppOutput(OutputChannel):
    """Sends to one WhatsApp number through the Messages API.

    `to` is the customer's number (known from the webhook). Without it (Rasa's channel-wide
    output, e.g. reminders) the number is looked up among the customer's linked identities.
    """

    def __init__(
        self,
        client: ProviderClient,
        messages_path: str,
        to: Optional[str] = None,
        resolver: Optional[IdentityResolver] = None,
        on_undelivered: Optional[Undelivered] = None,
    ) -> None:
        self.client = client
        self.messages_path = messages_path
        self.to = to
        self.resolver = resolver
        self.on_undelivered = on_undelivered

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        for part in split_text(text or "", TEXT_LIMIT):
            await self._send(recipient_id, {"type": "text", "text": {"preview_url": False, "body": part}})

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: List[Dict[str, Any]], **kwargs: Any
    ) -> None:
        message = interactive_message(text or "", buttons or [])
        if message is None:
            await self.send_text_message(recipient_id, numbered_text(text or "", buttons or []))
        else:
            await self._send(recipient_id, message)

    async def send_quick_replies(
        self, recipient_id: str, text: str, quick_replies: List[Dict[str, Any]], **kwargs: Any
    ) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies)

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        if isinstance(image, str) and image.startswith(("https://", "http://")):
            await self._send(recipient_id, {"type": "image", "image": {"link": image}})
        else:
            await self.send_text_message(recipient_id, f"Image: {image}")

    async def send_custom_json(self, recipient_id: str, json_message: Dict[str, Any], **kwargs: Any) -> None:
        # A custom payload that is already a Messages API message ({"type": "...", "<type>": {...}})
        # goes out as it is; anything else as text, as Rasa's default does.
        kind = json_message.get("type") if isinstance(json_message, dict) else None
        if isinstance(kind, str) and isinstance(json_message.get(kind), dict):
            payload = {k: v for k, v in json_message.items() if k not in ("messaging_product", "recipient_type", "to")}
            await self._send(recipient_id, payload)
        else:
            await self.send_text_message(recipient_id, json.dumps(json_message, ensure_ascii=False))

    async def _send(self, recipient_id: str, message: Dict[str, Any]) -> None:
        kind = str(message.get("type"))
        to = self.to or await self._number_of(recipient_id)
        if to is None:
            logger.error("whatsapp: no WhatsApp number known for %s; a %s message was not sent", recipient_id, kind)
            self._undelivered(recipient_id, kind, "no WhatsApp number is linked to this customer")
            return
        payload = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, **message}
        try:
            await self.client.post_json(self.messages_path, payload)
        except OutboundError as exc:  # never into Rasa: the conversation carries on
            logger.error("whatsapp: a %s message to %s was not delivered: %s", kind, _masked(to), exc)
            self._undelivered(recipient_id, kind, str(exc))
        except Exception as exc:
            logger.exception("whatsapp: sending a %s message to %s failed", kind, _masked(to))
            self._undelivered(recipient_id, kind, f"{type(exc).__name__}: {exc}")

    def _undelivered(self, recipient_id: str, kind: str, reason: str) -> None:
        if self.on_undelivered is not None:
            self.on_undelivered(recipient_id, kind, reason)

    async def _number_of(self, recipient_id: str) -> Optional[str]:
        try:
            return Identity.of(WHATSAPP, recipient_id).value
        except IdentityError:
            pass
        if self.resolver is None:
            return None
        try:
            linked = await self.resolver.directory.identities(recipient_id)
        except Exception as exc:
            logger.error("whatsapp: cannot look up the number of %s: %s", recipient_id, exc)
            return None
        numbers = [item.identity.value for item in linked if item.identity.kind == WHATSAPP]
        return numbers[-1] if numbers else None  # the most recently linked


class WhatsAppInput(InputChannel):
    """`connectors.whatsapp.WhatsAppInput` in credentials.yml; secrets come from the environment."""

    OPTIONS = {
        "access_token": str,
        "app_secret": str,
        "verify_token": str,
        "phone_number_id": str,
        "api_base_url": str,
        "api_version": str,
        "max_message_chars": int,
        "max_body_bytes": int,
        "timeout": float,
        "attempts": int,
        "rate_limits": object,  # a mapping, or false (connectors.limits.RateLimits.read)
    }
    REQUIRED = ("access_token", "app_secret", "verify_token", "phone_number_id")
    ENV = {
        "access_token": "WHATSAPP_ACCESS_TOKEN",
        "app_secret": "WHATSAPP_APP_SECRET",
        "verify_token": "WHATSAPP_VERIFY_TOKEN",
        "phone_number_id": "WHATSAPP_PHONE_NUMBER_ID",
    }

    def __init__(
        self,
        *,
        access_token: str,
        app_secret: str,
        verify_token: str,
        phone_number_id: str,
        api_base_url: str = "https://graph.facebook.com",
        api_version: str = "v21.0",
        max_message_chars: int = 4096,
        max_body_bytes: int = 256 * 1024,
        timeout: float = 10.0,
        attempts: int = 4,
        resolver: Optional[IdentityResolver] = None,
        deduplicator: Optional[Deduplicator] = None,
        backoff: float = 0.5,
        rate_limits: RateLimits = WEBHOOK_LIMITS,
    ) -> None:
        self.access_token = access_token
        self.app_secret = app_secret
        self.verify_token = verify_token
        self.phone_number_id = str(phone_number_id)
        self.api_base_url = api_base_url.rstrip("/")
        self.api_version = api_version.strip("/")
        self.max_message_chars = max_message_chars
        self.max_body_bytes = max_body_bytes
        self.resolver = resolver or shared_resolver()
        self.deduplicator = deduplicator or Deduplicator(self.resolver)
        self.client = ProviderClient(
            self.api_base_url,
            {"Authorization": f"Bearer {access_token}"},
            RetryPolicy(attempts=attempts, timeout=timeout, backoff=backoff),
        )
        self.messages_path = f"{self.api_version}/{self.phone_number_id}/messages"
        self.limiter = Limiter(rate_limits)
        self._work = SenderQueues(CHANNEL, rate_limits.max_queued_per_sender, rate_limits.max_queued)

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> "WhatsAppInput":
        options = Options.read(f"{__name__}.WhatsAppInput", credentials, cls.OPTIONS, cls.REQUIRED, cls.ENV)
        options.positive("max_message_chars", "max_body_bytes", "timeout", "attempts")
        values = dict(options.values)
        rate_limits = RateLimits.read(options.owner, values.pop("rate_limits", None), WEBHOOK_LIMITS, WEBHOOK_KEYS)
        return cls(**values, rate_limits=rate_limits)

    def get_output_channel(self) -> Optional[OutputChannel]:
        return WhatsAppOutput(self.client, self.messages_path, resolver=self.resolver)

    async def proactive_output(self, conversation_id: str, report: Any) -> OutputChannel:
        """connectors.proactive: the customer's most recently linked number; a refusal goes to `report`."""
        return WhatsAppOutput(self.client, self.messages_path, resolver=self.resolver,
                              on_undelivered=lambda _recipient, _kind, reason: report.failed(reason))

    def output_for(self, number: str, on_undelivered: Optional[Undelivered] = None) -> WhatsAppOutput:
        return WhatsAppOutput(self.client, self.messages_path, to=number, resolver=self.resolver, on_undelivered=on_undelivered)

    # --- HTTP -----------------------------------------------------------------------------

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        webhook = Blueprint("engage_whatsapp_webhook")

        @webhook.listener("before_server_stop")
        async def finish(app: Sanic, _: Any) -> None:
            await self.drain(timeout=5.0)
            await self.client.close()

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            mode = request.args.get("hub.mode")
            token = request.args.get("hub.verify_token")
            challenge = request.args.get("hub.challenge")
            if not mode or token is None or challenge is None:
                return response.text("missing hub.mode, hub.verify_token or hub.challenge", status=400)
            if mode != "subscribe":
                return response.text("hub.mode must be subscribe", status=400)
            if not hmac.compare_digest(token.encode("utf-8"), self.verify_token.encode("utf-8")):
                logger.warning("whatsapp: verification request with a wrong verify token")
                return response.text("verify token mismatch", status=403)
            return response.text(challenge, status=200)

        # stream=True: an oversized body is refused after max_body_bytes, not buffered first.
        @webhook.route("/webhook", methods=["POST"], stream=True)
        async def receive(request: Request) -> HTTPResponse:
            try:
                self.limiter.check_address(client_address(request, self.limiter))
            except RequestRejected as limited:
                logger.warning("whatsapp: refused a webhook from %s: %s", request.ip, limited.detail)
                return response.json(limited.body(), status=limited.status, headers=limited.headers())
            try:
                body = await read_body(request, self.max_body_bytes)
            except RequestRejected as rejected:
                logger.warning("whatsapp: refused a webhook body over %d bytes", self.max_body_bytes)
                return response.json(rejected.body(), status=rejected.status)
            signature = request.headers.get(SIGNATURE_HEADER)
            if not signature:
                logger.warning("whatsapp: webhook without %s refused", SIGNATURE_HEADER)
                return response.json({"error": "signature_missing"}, status=401)
            if not self.signature_matches(body, signature):
                logger.warning("whatsapp: webhook with a wrong %s refused", SIGNATURE_HEADER)
                return response.json({"error": "signature_mismatch"}, status=403)
            try:
                payload = load_json(body)
            except RequestRejected as rejected:
                logger.warning("whatsapp: refused a signed webhook body: %s", rejected.detail)
                return response.json(rejected.body(), status=rejected.status)
            if not _is_envelope(payload):
                logger.warning("whatsapp: refused a signed webhook that is not a whatsapp_business_account notification")
                return response.json({"error": "unexpected_payload"}, status=400)
            for number, message, contact in self._messages(payload):
                self._enqueue(request.app, number, message, contact, on_new_message)
            return response.json({"status": "received"})

        return webhook

    def _enqueue(
        self, app: Sanic, number: str, message: Dict[str, Any], contact: Dict[str, Any], on_new_message: OnNewMessage
    ) -> None:
        """Queue the message behind the sender's earlier ones, or drop it (recorded, and the sender
        asked to slow down) when they send too fast or too much is waiting."""
        reason = SENDER_RATE if self.limiter.sender_wait(number) else self._work.refusal(number)
        if reason is None:
            job = partial(self._handle_message, app, number, message, contact, on_new_message)
            self._work.submit(app, number, job, f"message {message['id'][:80]} from {_masked(number)}")
            return
        conversation = f"{WHATSAPP}:{number[:32]}"
        text, kind = message_text(message)
        notice = None
        if self.limiter.notice_due(number):
            output = self.output_for(number, undelivered_recorder(app, CHANNEL))
            notice = output.send_text_message(conversation, SLOW_DOWN_TEXT)
        drop_message(app, CHANNEL, conversation, reason, message_id=message["id"],
                     text=normalise_text(text)[: self.max_message_chars] if text is not None else f"[{kind}]",
                     notice=notice, who=_masked(number))

    def signature_matches(self, body: bytes, header: str) -> bool:
        expected = "sha256=" + hmac.new(self.app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode("ascii"), header.strip().lower().encode("utf-8", "replace"))

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for messages being handled (a stop does this), then give up on the rest."""
        await self._work.drain(timeout)

    def _messages(self, payload: Dict[str, Any]) -> Iterator[Tuple[str, Dict[str, Any], Dict[str, Any]]]:
        """The payload's messages in order: (sender's number, message, sender's contact)."""
        for entry in payload["entry"]:
            changes = entry.get("changes") if isinstance(entry, dict) else None
            for change in changes if isinstance(changes, list) else []:
                value = change.get("value") if isinstance(change, dict) else None
                if not isinstance(value, dict) or change.get("field", "messages") != "messages":
                    continue
                messages = value.get("messages")
                if not isinstance(messages, list):
                    continue  # statuses (delivery receipts) and other notifications: nothing to answer
                receiver = (value.get("metadata") or {}).get("phone_number_id") if isinstance(value.get("metadata"), dict) else None
                if receiver is not None and str(receiver) != self.phone_number_id:
                    logger.warning("whatsapp: ignored %d message(s) sent to another number (%s)", len(messages), receiver)
                    continue
                listed = value.get("contacts")
                contacts = [c for c in listed if isinstance(c, dict)] if isinstance(listed, list) else []
                for message in messages:
                    if not isinstance(message, dict) or not isinstance(message.get("from"), str):
                        logger.warning("whatsapp: ignored a message without a sender")
                        continue
                    if not _is_message_id(message.get("id")):
                        # Meta's ids are strings ("wamid...."); without one a redelivery cannot be told apart.
                        logger.warning("whatsapp: ignored a message from %s without a usable id (%s)",
                                       _masked(message["from"]), type(message.get("id")).__name__)
                        continue
                    contact = next((c for c in contacts if c.get("wa_id") == message["from"]), contacts[0] if contacts else {})
                    yield message["from"], message, contact

    async def _handle_message(
        self, app: Sanic, number: str, message: Dict[str, Any], contact: Dict[str, Any], on_new_message: OnNewMessage
    ) -> None:
        message_id: str = message["id"]  # checked by _messages
        if not await self.deduplicator.first_time(CHANNEL, message_id):
            logger.info("whatsapp: dropped a repeated message %s", message_id[:80])
            return
        kind = message.get("type")
        if isinstance(kind, str) and kind in SILENT_TYPES:
            logger.info("whatsapp: ignored a %s message from %s", kind, _masked(number))
            return
        try:
            identity = Identity.of(WHATSAPP, number)
        except IdentityError as exc:
            logger.warning("whatsapp: ignored a message from an unusable number: %s", exc)
            return
        output = CountingOutput(self.output_for(identity.value, undelivered_recorder(app, CHANNEL)))
        try:
            customer_id = await self.resolver.customer_for([identity])
        except IdentityUnavailable:
            await output.send_text_message(identity.value, APOLOGY_TEXT)
            return
        text, unsupported = message_text(message)
        if text is None:
            logger.info("whatsapp: unsupported %s message from %s", unsupported, customer_id)
            await output.send_text_message(customer_id, TEXT_ONLY)
            record_connector_event(app, UNSUPPORTED_MESSAGE, customer_id, CHANNEL, {"type": unsupported})
            return
        if not text.strip():
            logger.info("whatsapp: refused a message from %s: empty_message", customer_id)
            await output.send_text_message(customer_id, EMPTY_TEXT)
            record_connector_event(app, MESSAGE_REFUSED, customer_id, CHANNEL, {"reason": "empty_message"})
            return
        if len(text) > self.max_message_chars:
            logger.info("whatsapp: refused a message from %s: message_too_long", customer_id)
            await output.send_text_message(customer_id, too_long_text(len(text), self.max_message_chars))
            record_connector_event(app, MESSAGE_REFUSED, customer_id, CHANNEL, {"reason": "message_too_long"})
            return
        profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
        wa_id, name = contact.get("wa_id"), profile.get("name")
        metadata = {"whatsapp": {
            "wa_id": wa_id if isinstance(wa_id, str) and wa_id else number,
            "profile_name": normalise_text(name) if isinstance(name, str) else None,
        }}
        user_message = UserMessage(
            normalise_text(text),
            output,
            customer_id,
            input_channel=CHANNEL,
            message_id=message_id,
            metadata=metadata,
        )
        await deliver(app, user_message, on_new_message)


# --- inbound messages ---------------------------------------------------------------------------


def _is_message_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 256


def _is_envelope(payload: Any) -> bool:
    return (
        isinstance(payload, dict)
        and payload.get("object") == "whatsapp_business_account"
        and isinstance(payload.get("entry"), list)
    )


def message_text(message: Dict[str, Any]) -> Tuple[Optional[str], str]:
    """(text for Rasa, "") or (None, the unsupported type): images, stickers, audio, video, documents,
    locations, contacts and any other type are answered with TEXT_ONLY."""
    kind = message.get("type")
    if kind == "text":
        body = (message.get("text") or {}).get("body") if isinstance(message.get("text"), dict) else None
        return (body, "") if isinstance(body, str) else (None, "text")
    if kind == "interactive":
        interactive = message.get("interactive") if isinstance(message.get("interactive"), dict) else {}
        sub = interactive.get("type")
        if sub in ("button_reply", "list_reply"):
            reply = interactive.get(sub) if isinstance(interactive.get(sub), dict) else {}
            chosen = reply.get("id") or reply.get("title")
            if isinstance(chosen, str):
                return chosen, ""
        return None, f"interactive.{sub}" if isinstance(sub, str) else "interactive"
    if kind == "button":  # a quick-reply button of a template message
        button = message.get("button") if isinstance(message.get("button"), dict) else {}
        chosen = button.get("payload") or button.get("text")
        if isinstance(chosen, str):
            return chosen, ""
        return None, "button"
    return None, kind if isinstance(kind, str) and kind else "unknown"


# --- outbound formatting ------------------------------------------------------------------------


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _reply_buttons(buttons: Sequence[Dict[str, Any]]) -> Optional[List[Tuple[str, str, str]]]:
    """(id, title, full title) for each button, or None when one is not a reply (a URL, no payload)."""
    choices = []
    for button in buttons:
        if not isinstance(button, dict):
            return None
        title, payload = button.get("title"), button.get("payload")
        if button.get("type") not in (None, "postback") or not isinstance(title, str) or not title.strip():
            return None
        if not isinstance(payload, str) or not payload.strip():
            return None
        choices.append((payload, title.strip(), title.strip()))
    return choices


def interactive_message(text: str, buttons: Sequence[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """Reply buttons (1–3) or a list (4–10) for Rasa buttons; None when they do not fit (numbered text then)."""
    choices = _reply_buttons(buttons)
    body = text.strip()
    if not choices or not body or len(body) > INTERACTIVE_BODY_LIMIT:
        return None
    if len(choices) <= MAX_REPLY_BUTTONS:
        if any(len(payload) > BUTTON_ID_LIMIT for payload, _, _ in choices):
            return None
        titles = [_shorten(title, BUTTON_TITLE_LIMIT) for _, title, _ in choices]
        if len(set(titles)) != len(titles) or len({p for p, _, _ in choices}) != len(choices):
            return None  # titles and ids must be unique within a message
        return {
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": body},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": payload, "title": title}}
                        for (payload, _, _), title in zip(choices, titles)
                    ]
                },
            },
        }
    if len(choices) <= MAX_LIST_ROWS:
        if any(len(payload) > ROW_ID_LIMIT for payload, _, _ in choices):
            return None
        if len({p for p, _, _ in choices}) != len(choices):
            return None
        rows = []
        for payload, title, full in choices:
            row = {"id": payload, "title": _shorten(title, ROW_TITLE_LIMIT)}
            if row["title"] != full:
                row["description"] = _shorten(full, ROW_DESCRIPTION_LIMIT)
            rows.append(row)
        return {
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": body},
                "action": {"button": LIST_BUTTON_TEXT, "sections": [{"rows": rows}]},
            },
        }
    return None


def numbered_text(text: str, buttons: Sequence[Dict[str, Any]]) -> str:
    lines = [text.strip()] if text and text.strip() else []
    for index, button in enumerate(buttons, start=1):
        if not isinstance(button, dict):
            continue
        title = str(button.get("title") or button.get("payload") or "").strip()
        url = button.get("url") if button.get("type") == "web_url" else None
        lines.append(f"{index}. {title}" + (f": {url}" if isinstance(url, str) else ""))
    return "\n".join(lines)


def _masked(number: str) -> str:
    return re.sub(r"\d(?=\d{4})", "•", number or "")
