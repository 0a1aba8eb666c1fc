"""Chatwoot bridge: Engage as a Chatwoot Agent Bot, for teams whose people work in Chatwoot.

Chatwoot owns the customer's channels (its inboxes) and the people; Engage answers first. Connect
an Agent Bot to an inbox with the outgoing URL
`https://<engage>/webhooks/chatwoot/webhook?token=<CHATWOOT_WEBHOOK_TOKEN>` (Chatwoot's stable
releases do not sign agent-bot webhooks, so the URL carries a secret, compared in constant time).

* `message_created` webhooks of incoming, public messages reach Rasa; everything else
  (outgoing and private messages, other events) is acknowledged and ignored. A message id seen
  before is dropped (Chatwoot retries). One conversation's messages are handled in order, in the
  background: the webhook is answered at once.
* The bot speaks only while the conversation is `pending` (Chatwoot's state for "with the bot");
  once a person has it (`open`), or it is `resolved` or `snoozed`, the bot stays silent.
* Replies go through the conversations messages API
  (`POST /api/v1/accounts/<account>/conversations/<id>/messages`, header `api_access_token`, the
  Agent Bot's token): text, and buttons as an `input_select` (`items` of title and value).
* A handover (the assistant queued the conversation for a person: it asked for one, or a trigger
  fired) is handed to Chatwoot instead of Engage's console: `toggle_status` to `open`, and the
  request leaves Engage's queue. A reply Chatwoot refuses is logged as `reply_undelivered`.

The Rasa conversation id is `chatwoot:<account>:<conversation>` (Chatwoot's contacts are not
verified evidence for Engage's customer directory). Proactive messages (connectors.proactive)
reach the same conversation.
"""

from __future__ import annotations

import hmac
import logging
import re
from functools import partial
from typing import Any, Dict, List, Optional, Tuple

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from analytics.schema import HANDOVER_QUEUE, handover_request_key
from connectors.dedup import Deduplicator
from connectors.delivery import CountingOutput, OnNewMessage, Undelivered, deliver, undelivered_recorder
from connectors.errors import ConnectorConfigError, RequestRejected
from connectors.identity import IdentityResolver, shared_resolver
from connectors.messages import normalise_text, split_text, too_long_text
from connectors.options import Options
from connectors.outbound import OutboundError, ProviderClient, RetryPolicy
from connectors.payload import load_json
from connectors.requests import SenderQueues, read_body

logger = logging.getLogger(__name__)

CHANNEL = "chatwoot"
BOT_STATUS = "pending"  # Chatwoot: the conversation is with the bot
TEXT_LIMIT = 150_000  # Chatwoot stores long text; split only what is absurdly long
SENDER = re.compile(r"^chatwoot:(\d{1,12}):(\d{1,15})$")


def conversation_id(account: int, conversation: int) -> str:
    return f"{CHANNEL}:{account}:{conversation}"


class ChatwootOutput(OutputChannel):
    """Posts to one Chatwoot conversation; a refusal is reported, never raised into Rasa."""

    def __init__(self, client: ProviderClient, account: int, conversation: int, on_undelivered: Optional[Undelivered] = None) -> None:
        self.client = client
        self.account = account
        self.conversation = conversation
        self.on_undelivered = on_undelivered
        self.author: Optional[str] = None  # set by connectors.proactive: shown to the customer as "<name>:"

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @property
    def messages_path(self) -> str:
        return f"api/v1/accounts/{self.account}/conversations/{self.conversation}/messages"

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        for part in split_text(self._signed(text or ""), TEXT_LIMIT):
            await self._post(recipient_id, {"content": part, "message_type": "outgoing", "private": False})

    async def send_text_with_buttons(self, recipient_id: str, text: str, buttons: List[Dict[str, Any]], **kwargs: Any) -> None:
        items = [{"title": str(b.get("title") or "")[:80], "value": str(b.get("payload") or b.get("title") or "")}
                 for b in buttons or [] if b.get("title")]
        if not items:
            await self.send_text_message(recipient_id, text)
            return
        await self._post(recipient_id, {"content": self._signed(text or ""), "message_type": "outgoing", "private": False,
                                        "content_type": "input_select", "content_attributes": {"items": items}})

    async def send_quick_replies(self, recipient_id: str, text: str, quick_replies: List[Dict[str, Any]], **kwargs: Any) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies)

    def _signed(self, text: str) -> str:
        return f"{self.author}: {text}" if self.author else text

    async def _post(self, recipient_id: str, payload: Dict[str, Any]) -> None:
        try:
            await self.client.post_json(self.messages_path, payload)
        except OutboundError as exc:
            logger.error("chatwoot: a reply to conversation %s was not delivered: %s", self.conversation, exc)
            if self.on_undelivered is not None:
                self.on_undelivered(recipient_id, str(payload.get("content_type") or "text"), str(exc))


class ChatwootInput(InputChannel):
    """`connectors.chatwoot.ChatwootInput` in credentials.yml (off until its variables are set)."""

    OPTIONS = {"base_url": str, "api_access_token": str, "webhook_token": str, "max_message_chars": int, "max_body_bytes": int,
               "timeout": float, "attempts": int}
    REQUIRED = ("base_url", "api_access_token", "webhook_token")
    ENV_HINT = {"base_url": "CHATWOOT_BASE_URL", "api_access_token": "CHATWOOT_BOT_TOKEN", "webhook_token": "CHATWOOT_WEBHOOK_TOKEN"}

    def __init__(
        self,
        *,
        base_url: str,
        api_access_token: str,
        webhook_token: str,
        max_message_chars: int = 4096,
        max_body_bytes: int = 256 * 1024,
        timeout: float = 10.0,
        attempts: int = 4,
        backoff: float = 0.5,
        resolver: Optional[IdentityResolver] = None,
        deduplicator: Optional[Deduplicator] = None,
    ) -> None:
        if len(webhook_token) < 16:
            raise ConnectorConfigError(f"{__name__}.ChatwootInput: 'webhook_token' must be at least 16 characters (CHATWOOT_WEBHOOK_TOKEN)")
        self.webhook_token = webhook_token.encode("utf-8")
        self.max_message_chars = max_message_chars
        self.max_body_bytes = max_body_bytes
        self.client = ProviderClient(base_url, {"api_access_token": api_access_token},
                                     RetryPolicy(attempts=attempts, timeout=timeout, backoff=backoff), label="chatwoot",
                                     secrets=(api_access_token,))
        self.resolver = resolver or shared_resolver()
        self.deduplicator = deduplicator or Deduplicator(self.resolver)
        self._work = SenderQueues(CHANNEL, 30, 2000)

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> "ChatwootInput":
        options = Options.read(f"{__name__}.ChatwootInput", credentials, cls.OPTIONS, cls.REQUIRED, cls.ENV_HINT)
        options.positive("max_message_chars", "max_body_bytes", "timeout", "attempts")
        return cls(**options.values)

    def get_output_channel(self) -> Optional[OutputChannel]:
        return None  # replies need the conversation the webhook named

    async def proactive_output(self, conversation: str, report: Any) -> OutputChannel:
        """connectors.proactive: the Chatwoot conversation this Rasa conversation is."""
        from connectors.proactive import Unreachable

        match = SENDER.match(conversation)
        if match is None:
            raise Unreachable("This conversation did not come from Chatwoot.")
        return ChatwootOutput(self.client, int(match[1]), int(match[2]), lambda _r, _k, reason: report.failed(reason))

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        webhook = Blueprint("engage_chatwoot_webhook", __name__)

        @webhook.listener("before_server_stop")
        async def finish(app: Sanic, _: Any) -> None:
            await self._work.drain(5.0)
            await self.client.close()

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"], stream=True)
        async def receive(request: Request) -> HTTPResponse:
            try:
                self._check_token(request.args.get("token", ""))
                event = load_json(await read_body(request, self.max_body_bytes))
            except RequestRejected as rejected:
                logger.info("chatwoot: rejected a webhook (%s)", rejected.code)
                return response.json(rejected.body(), status=rejected.status)
            work = _incoming(event)
            if work is None:
                return response.json({"status": "ignored"})
            account, conversation, message_id, text, status = work
            if status != BOT_STATUS:
                logger.info("chatwoot: conversation %s is %s: a person has it, the bot stays silent", conversation, status)
                return response.json({"status": "ignored", "reason": f"conversation is {status}"})
            sender = conversation_id(account, conversation)
            job = partial(self._handle, request.app, account, conversation, message_id, text, event, on_new_message)
            if not self._work.submit(request.app, sender, job, f"message {message_id} of {sender}"):
                return response.json({"error": "busy", "message": "Too many messages are waiting; retry later."}, status=429)
            return response.json({"status": "received"})

        return webhook

    def _check_token(self, given: str) -> None:
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self.webhook_token):
            raise RequestRejected(401, "invalid_token", "The webhook URL's token is wrong: use ...?token=$CHATWOOT_WEBHOOK_TOKEN.")

    async def _handle(
        self, app: Sanic, account: int, conversation: int, message_id: str, text: str, event: Dict[str, Any], on_new_message: OnNewMessage
    ) -> None:
        if not await self.deduplicator.first_time(CHANNEL, f"{account}:{message_id}"):
            logger.info("chatwoot: dropped a repeated message %s", message_id)
            return
        sender = conversation_id(account, conversation)
        output = ChatwootOutput(self.client, account, conversation, undelivered_recorder(app, CHANNEL))
        if len(text) > self.max_message_chars:
            await output.send_text_message(sender, too_long_text(len(text), self.max_message_chars))
            return
        contact = (event.get("sender") or {}) if isinstance(event.get("sender"), dict) else {}
        metadata = {"chatwoot": {"account_id": account, "conversation_id": conversation, "inbox_id": (event.get("inbox") or {}).get("id"),
                                 "contact_id": contact.get("id")}}
        message = UserMessage(normalise_text(text), CountingOutput(output), sender, input_channel=CHANNEL, message_id=message_id, metadata=metadata)
        await deliver(app, message, on_new_message)
        await self._hand_over_if_asked(sender, account, conversation)

    async def _hand_over_if_asked(self, sender: str, account: int, conversation: int) -> None:
        """The assistant queued a handover: Chatwoot's people take it (status open), not Engage's console."""
        client = self.resolver.client
        if await client.zscore(HANDOVER_QUEUE, sender) is None:
            return
        try:
            await self.client.post_json(f"api/v1/accounts/{account}/conversations/{conversation}/toggle_status", {"status": "open"})
        except OutboundError as exc:  # it stays in Engage's queue, where someone will see it
            logger.error("chatwoot: could not hand conversation %s to a person: %s", conversation, exc)
            return
        async with client.pipeline(transaction=True) as pipe:
            pipe.zrem(HANDOVER_QUEUE, sender)
            pipe.delete(handover_request_key(sender))
            await pipe.execute()
        logger.info("chatwoot: conversation %s handed to Chatwoot's agents", conversation)


def _incoming(event: Any) -> Optional[Tuple[int, int, str, str, str]]:
    """(account, conversation, message id, text, conversation status) of a message to answer, else None."""
    if not isinstance(event, dict) or event.get("event") != "message_created":
        return None
    if event.get("message_type") not in ("incoming", 0) or event.get("private") is True:
        return None
    text, message_id = event.get("content"), event.get("id")
    account = (event.get("account") or {}).get("id") if isinstance(event.get("account"), dict) else None
    conversation = event.get("conversation") if isinstance(event.get("conversation"), dict) else {}
    number = conversation.get("id")
    if not isinstance(text, str) or not text.strip() or not isinstance(account, int) or not isinstance(number, int):
        return None
    if isinstance(message_id, bool) or not isinstance(message_id, (int, str)):
        return None
    return account, number, str(message_id)[:64], text, str(conversation.get("status") or "")
