"""Telegram over the Bot API: updates arrive on a webhook, replies go out with sendMessage.

Register the webhook with Telegram's `setWebhook` (url https://<host>/webhooks/telegram/webhook,
secret_token = the `secret_token` option). Then:

* a request without the `X-Telegram-Bot-Api-Secret-Token` header is refused with 401, a wrong
  one with 403, before the body is read; nothing reaches Rasa or the interaction log;
* a valid update is acknowledged at once (Telegram waits for the answer before sending the
  next one) and handled in a background task; one user's updates are handled in the order
  they arrived, and a repeated `update_id` is dropped;
* limits (`rate_limits`, connectors.limits): an address that posts too fast gets 429 with
  Retry-After; an update from a user who sends too fast, or whose queue is full, is dropped with
  a `message_dropped` record and the user is asked to slow down (at most every 30 s);
* the conversation id is the customer id of the Telegram *user* (analytics.customers), so a
  customer keeps one conversation across channels; replies go to the *chat* the update came from;
* text goes to Rasa; an inline-keyboard press is answered (`answerCallbackQuery`, which stops
  the button's spinner) and its payload goes to Rasa as the text; media get a polite "text
  only" reply and an `unsupported_message` record; edited messages and channel posts are ignored;
* buttons become an inline keyboard. `callback_data` holds at most 64 bytes, so a longer
  payload is kept in Redis for a week and the button carries `cb:<12 hex>` instead;
* replies longer than Telegram's 4096 characters are split; sending is retried on 429/5xx
  (waiting what Telegram asks for), and a reply that still cannot be sent is logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from functools import partial
from typing import Any, Dict, List, Optional

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from analytics.customers import TELEGRAM, Identity, IdentityError
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
from connectors.errors import ConnectorConfigError, RequestRejected
from connectors.identity import IdentityResolver, IdentityUnavailable, shared_resolver
from connectors.limits import SENDER_RATE, WEBHOOK_KEYS, WEBHOOK_LIMITS, Limiter, RateLimits
from connectors.messages import APOLOGY_TEXT, EMPTY_TEXT, SLOW_DOWN_TEXT, TEXT_ONLY, normalise_text, split_text, too_long_text, utf16_units
from connectors.options import Options
from connectors.outbound import OutboundError, ProviderClient, RetryPolicy, retry_after
from connectors.payload import load_json
from connectors.requests import SenderQueues, client_address, read_body, spawn

logger = logging.getLogger(__name__)

CHANNEL = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what setWebhook accepts as secret_token
DEFAULT_API_BASE_URL = "https://api.telegram.org"
TEXT_LIMIT = 4096  # sendMessage: 1-4096 characters after entities parsing (UTF-16 code units)
CALLBACK_DATA_BYTES = 64  # InlineKeyboardButton.callback_data: 1-64 bytes
CALLBACK_PREFIX = "cb:"
CALLBACK_KEY = "engage:tg:cb:"
CALLBACK_TTL_SECONDS = 7 * 24 * 3600

EXPIRED_BUTTON_TEXT = "Sorry, that button has expired. Please type your answer instead."
CHOOSE_TEXT = "Please choose:"

# Message fields that carry something other than text, most specific first (an animation
# message also has `document`, a venue also has `location`).
UNSUPPORTED_TYPES = (
    "animation", "video_note", "photo", "sticker", "voice", "audio", "video",
    "document", "venue", "location", "contact", "poll", "dice",
)

_TEXT, _CALLBACK, _UNSUPPORTED = "text", "callback", "unsupported"


class _BotApi(ProviderClient):
    """ProviderClient for `{api_base_url}/bot{token}/{method}`: the token is masked in logs and
    errors, and a 429's wait is also read from the body (`parameters.retry_after`)."""

    def __init__(self, api_base_url: str, token: str, policy: RetryPolicy) -> None:
        super().__init__(f"{api_base_url.rstrip('/')}/bot{token}", policy=policy, label="telegram", secrets=(token,))

    async def call(self, method: str, payload: Dict[str, Any]) -> Any:
        """The `result` of a Bot API method, or OutboundError."""
        body = await self.post_json(method, payload)
        if isinstance(body, dict) and body.get("ok") is False:
            raise OutboundError(f"telegram {method}: {body.get('description')}", body.get("error_code"), body)
        return body.get("result") if isinstance(body, dict) else body

    def wait_from_body(self, body: Any) -> Optional[float]:
        parameters = body.get("parameters") if isinstance(body, dict) else None
        return retry_after(parameters.get("retry_after")) if isinstance(parameters, dict) else None

    def describe(self, body: Any) -> str:
        if isinstance(body, dict):
            return str(body.get("description") or body)[:200]
        return str(body)[:200]


class _CallbackStore:
    """Button payloads too long for callback_data, kept in Redis under a short key."""

    def __init__(self, resolver: IdentityResolver, ttl: int = CALLBACK_TTL_SECONDS) -> None:
        self._resolver = resolver
        self._ttl = ttl

    async def encode(self, payload: str) -> str:
        if len(payload.encode("utf-8")) <= CALLBACK_DATA_BYTES and not payload.startswith(CALLBACK_PREFIX):
            return payload
        digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]
        try:
            await self._resolver.client.set(CALLBACK_KEY + digest, payload.encode("utf-8"), ex=self._ttl)
        except Exception as exc:  # the button still goes out; pressing it asks the customer to type
            logger.error("telegram: could not store a button payload (%s); the button will not work", exc)
        return CALLBACK_PREFIX + digest

    async def decode(self, data: str) -> Optional[str]:
        """The payload behind a button's callback_data; None when its key expired (or Redis is down)."""
        if not data.startswith(CALLBACK_PREFIX):
            return data
        digest = data[len(CALLBACK_PREFIX):]
        if not re.fullmatch(r"[0-9a-f]{12}", digest):
            return None
        try:
            stored = await self._resolver.client.get(CALLBACK_KEY + digest)
        except Exception as exc:
            logger.error("telegram: could not read a button payload (%s)", exc)
            return None
        return stored.decode("utf-8") if isinstance(stored, bytes) else stored


class TelegramOutput(OutputChannel):
    """Replies to one chat. A reply that cannot be sent is logged, never raised into Rasa
    (an exception there would lose the conversation's new events)."""

    def __init__(
        self, api: _BotApi, chat_id: int, callbacks: _CallbackStore, on_undelivered: Optional[Undelivered] = None
    ) -> None:
        self.api = api
        self.chat_id = chat_id
        self.callbacks = callbacks
        self.on_undelivered = on_undelivered

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        for piece in split_text(text or "", TEXT_LIMIT, utf16_units):
            await self._send(recipient_id, {"chat_id": self.chat_id, "text": piece})

    async def send_text_with_buttons(self, recipient_id: str, text: str, buttons: List[Dict[str, Any]], **kwargs: Any) -> None:
        keyboard = [[button] for button in [await self._button(b) for b in buttons] if button is not None]
        pieces = split_text(text or "", TEXT_LIMIT, utf16_units) or [CHOOSE_TEXT]
        for piece in pieces[:-1]:
            await self._send(recipient_id, {"chat_id": self.chat_id, "text": piece})
        last: Dict[str, Any] = {"chat_id": self.chat_id, "text": pieces[-1]}
        if keyboard:
            last["reply_markup"] = {"inline_keyboard": keyboard}
        await self._send(recipient_id, last)

    async def send_custom_json(self, recipient_id: str, json_message: Dict[str, Any], **kwargs: Any) -> None:
        """A custom payload with `text` is sent as a sendMessage (its other fields as given)."""
        if isinstance(json_message, dict) and isinstance(json_message.get("text"), str):
            await self._send(recipient_id, {**json_message, "chat_id": self.chat_id})
        else:
            logger.warning("telegram: custom payload without text not sent: %s", str(json_message)[:200])

    async def _button(self, button: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        title = str(button.get("title") or "").strip()
        if not title:
            return None
        url = button.get("url")
        if isinstance(url, str) and url and (button.get("type") == "web_url" or not button.get("payload")):
            return {"text": title, "url": url}
        payload = str(button.get("payload") or title)
        return {"text": title, "callback_data": await self.callbacks.encode(payload)}

    async def _send(self, recipient_id: str, payload: Dict[str, Any]) -> None:
        try:
            await self.api.call("sendMessage", payload)
        except OutboundError as exc:
            logger.error("telegram: a reply to chat %s was not delivered: %s", self.chat_id, exc)
            if self.on_undelivered is not None:
                self.on_undelivered(recipient_id, "text", str(exc))


@dataclass(frozen=True)
class _Work:
    """One update worth handling, read from the webhook body."""

    kind: str
    update_id: int
    user_id: int
    chat_id: int
    username: Optional[str]
    text: Optional[str] = None  # message text, or a button's callback_data
    callback_id: Optional[str] = None
    media: Optional[str] = None


class TelegramInput(InputChannel):
    """`connectors.telegram.TelegramInput` in credentials.yml (bot_token and secret_token from the environment)."""

    OPTIONS = {
        "bot_token": str,
        "secret_token": str,
        "api_base_url": str,
        "max_message_chars": int,
        "max_body_bytes": int,
        "timeout": float,
        "attempts": int,
        "rate_limits": object,  # a mapping, or false (connectors.limits.RateLimits.read)
    }
    REQUIRED = ("bot_token", "secret_token")
    ENV_HINT = {"bot_token": "TELEGRAM_BOT_TOKEN", "secret_token": "TELEGRAM_WEBHOOK_SECRET"}

    def __init__(
        self,
        *,
        bot_token: str,
        secret_token: str,
        api_base_url: str = DEFAULT_API_BASE_URL,
        max_message_chars: int = 4096,
        max_body_bytes: int = 256 * 1024,
        timeout: float = 10.0,
        attempts: int = 4,
        resolver: Optional[IdentityResolver] = None,
        deduplicator: Optional[Deduplicator] = None,
        rate_limits: RateLimits = WEBHOOK_LIMITS,
    ) -> None:
        self.secret_token = secret_token
        self.max_message_chars = max_message_chars
        self.max_body_bytes = max_body_bytes
        self.api = _BotApi(api_base_url, bot_token, RetryPolicy(attempts=attempts, timeout=timeout))
        self.resolver = resolver or shared_resolver()
        self.deduplicator = deduplicator or Deduplicator(self.resolver)
        self.callbacks = _CallbackStore(self.resolver)
        self.limiter = Limiter(rate_limits)
        self._work = SenderQueues(CHANNEL, rate_limits.max_queued_per_sender, rate_limits.max_queued)

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> "TelegramInput":
        options = Options.read(f"{__name__}.TelegramInput", credentials, cls.OPTIONS, cls.REQUIRED, cls.ENV_HINT)
        options.positive("max_message_chars", "max_body_bytes", "timeout", "attempts")
        if not SECRET_PATTERN.match(options.values["secret_token"]):
            raise ConnectorConfigError(
                f"{options.owner}: 'secret_token' must be 1-256 characters of A-Z, a-z, 0-9, _ and - (what setWebhook accepts)"
            )
        values = dict(options.values)
        rate_limits = RateLimits.read(options.owner, values.pop("rate_limits", None), WEBHOOK_LIMITS, WEBHOOK_KEYS)
        return cls(**values, rate_limits=rate_limits)

    def get_output_channel(self) -> Optional[OutputChannel]:
        return None  # replies need the chat id of the update being answered

    async def proactive_output(self, conversation_id: str, report: Any) -> OutputChannel:
        """connectors.proactive: the private chat of the customer's most recently linked Telegram user
        (a private chat's id is the user's id); a refusal goes to `report`."""
        from connectors.proactive import Unreachable

        try:
            user_id = Identity.of(TELEGRAM, conversation_id.split(":", 1)[1]).value if conversation_id.startswith(f"{TELEGRAM}:") else None
        except IdentityError:
            user_id = None
        if user_id is None:
            linked = await self.resolver.directory.identities(conversation_id)
            users = [item.identity.value for item in linked if item.identity.kind == TELEGRAM]
            if not users:
                raise Unreachable("No Telegram user is linked to this customer.")
            user_id = users[-1]
        return TelegramOutput(self.api, int(user_id), self.callbacks, lambda _recipient, _kind, reason: report.failed(reason))

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        webhook = Blueprint("engage_telegram_webhook", __name__)

        @webhook.listener("before_server_stop")
        async def finish(app: Sanic, _: Any) -> None:
            await self.drain()
            await self.api.close()

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        # stream=True: the secret is checked before any of the body is read, and an oversized
        # body is refused after max_body_bytes instead of being buffered first.
        @webhook.route("/webhook", methods=["POST"], stream=True)
        async def receive(request: Request) -> HTTPResponse:
            try:
                self.limiter.check_address(client_address(request, self.limiter))
                self._check_secret(request.headers.get(SECRET_HEADER))
                update = _load_update(await read_body(request, self.max_body_bytes))
            except RequestRejected as rejected:
                logger.info("telegram: rejected a webhook request (%s)", rejected.code)
                return response.json(rejected.body(), status=rejected.status, headers=rejected.headers())
            work = _read_update(update)
            if work is None:
                logger.debug("telegram: ignored update %s (%s)", update["update_id"], ", ".join(k for k in update if k != "update_id"))
            else:
                self._enqueue(request.app, work, on_new_message)
            return response.json({"ok": True})

        return webhook

    # -- the webhook request -------------------------------------------------------------

    def _check_secret(self, given: Optional[str]) -> None:
        if given is None:
            raise RequestRejected(401, "missing_secret", f"The {SECRET_HEADER} header is required.")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self.secret_token.encode("utf-8")):
            raise RequestRejected(403, "wrong_secret", f"The {SECRET_HEADER} header is wrong.")

    # -- one user's updates, in order ----------------------------------------------------

    def _enqueue(self, app: Sanic, work: _Work, on_new_message: OnNewMessage) -> None:
        """Queue the update behind the user's earlier ones, or drop it (recorded, and the user asked
        to slow down) when they send too fast or too much is waiting."""
        reason = SENDER_RATE if self.limiter.sender_wait(work.user_id) else self._work.refusal(work.user_id)
        if reason is None:
            job = partial(self._handle, app, work, on_new_message)
            self._work.submit(app, work.user_id, job, f"update {work.update_id}")
            return
        conversation = f"{TELEGRAM}:{work.user_id}"
        notice = None
        if self.limiter.notice_due(work.user_id):
            output = TelegramOutput(self.api, work.chat_id, self.callbacks, undelivered_recorder(app, CHANNEL))
            notice = output.send_text_message(conversation, SLOW_DOWN_TEXT)
        text = normalise_text(work.text)[: self.max_message_chars] if work.text is not None else f"[{work.media or work.kind}]"
        drop_message(app, CHANNEL, conversation, reason, message_id=str(work.update_id), text=text, notice=notice)
        if work.kind == _CALLBACK:  # stop the button's spinner, saying why nothing happens
            spawn(app, self._answer_callback(work.callback_id, SLOW_DOWN_TEXT))

    async def drain(self, timeout: float = 10.0) -> None:
        """Let updates being handled finish (a server stop), cancelling what is still running after `timeout`."""
        await self._work.drain(timeout)

    # -- handling one update -------------------------------------------------------------

    async def _handle(self, app: Sanic, work: _Work, on_new_message: OnNewMessage) -> None:
        if not await self.deduplicator.first_time(CHANNEL, str(work.update_id)):
            logger.info("telegram: dropped a repeated update %s", work.update_id)
            return
        output = CountingOutput(TelegramOutput(self.api, work.chat_id, self.callbacks, undelivered_recorder(app, CHANNEL)))
        text = work.text
        if work.kind == _CALLBACK:
            await self._answer_callback(work.callback_id)
            if text is None:
                return  # a game button or similar: nothing to say
            text = await self.callbacks.decode(text)
            if text is None:
                await output.send_text_message(str(work.user_id), EXPIRED_BUTTON_TEXT)
                return
        try:
            customer_id = await self.resolver.customer_for([Identity.of(TELEGRAM, str(work.user_id))])
        except IdentityUnavailable:
            await output.send_text_message(str(work.user_id), APOLOGY_TEXT)
            return
        except IdentityError as exc:
            logger.warning("telegram: update %s from an unusable user id: %s", work.update_id, exc)
            return
        if work.kind == _UNSUPPORTED:
            await output.send_text_message(customer_id, TEXT_ONLY)
            record_connector_event(app, UNSUPPORTED_MESSAGE, customer_id, CHANNEL, {"type": work.media})
            return
        assert text is not None
        if len(text) > self.max_message_chars:
            await output.send_text_message(customer_id, too_long_text(len(text), self.max_message_chars))
            record_connector_event(
                app, MESSAGE_REFUSED, customer_id, CHANNEL, {"reason": "message_too_long", "length": len(text)}
            )
            return
        if not text.strip():
            await output.send_text_message(customer_id, EMPTY_TEXT)
            record_connector_event(app, MESSAGE_REFUSED, customer_id, CHANNEL, {"reason": "empty_message"})
            return
        metadata = {"telegram": {"user_id": work.user_id, "chat_id": work.chat_id, "username": work.username}}
        message = UserMessage(
            normalise_text(text),
            output,
            customer_id,
            input_channel=CHANNEL,
            message_id=f"telegram-{work.update_id}",
            metadata=metadata,
        )
        await deliver(app, message, on_new_message)

    async def _answer_callback(self, callback_id: Optional[str], notice: Optional[str] = None) -> None:
        """Answer a button press (the client shows a spinner until then); `notice` shows as a toast."""
        if not callback_id:
            return
        try:
            await self.api.call("answerCallbackQuery", {"callback_query_id": callback_id, **({"text": notice} if notice else {})})
        except OutboundError as exc:  # the spinner stops by itself; the press is still handled
            logger.warning("telegram: answerCallbackQuery failed: %s", exc)


def _load_update(body: bytes) -> Dict[str, Any]:
    update = load_json(body)
    if not isinstance(update, dict) or not _is_id(update.get("update_id")):
        raise RequestRejected(400, "not_an_update", "The request body must be a Telegram Update with an update_id.")
    return update


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_update(update: Dict[str, Any]) -> Optional[_Work]:
    """What to do with an update: None for the kinds Engage ignores (edits, channel posts, service messages)."""
    update_id = update["update_id"]
    message = update.get("message")
    if isinstance(message, dict):
        sender, chat = message.get("from"), message.get("chat")
        if not isinstance(sender, dict) or not isinstance(chat, dict) or sender.get("is_bot"):
            return None
        if not _is_id(sender.get("id")) or not _is_id(chat.get("id")):
            return None
        common = dict(update_id=update_id, user_id=sender["id"], chat_id=chat["id"], username=_username(sender))
        if isinstance(message.get("text"), str):
            return _Work(_TEXT, text=message["text"], **common)
        media = next((kind for kind in UNSUPPORTED_TYPES if kind in message), None)
        return _Work(_UNSUPPORTED, media=media, **common) if media else None
    query = update.get("callback_query")
    if isinstance(query, dict):
        sender = query.get("from")
        if not isinstance(sender, dict) or not _is_id(sender.get("id")) or not isinstance(query.get("id"), str):
            return None
        chat = (query.get("message") or {}).get("chat") if isinstance(query.get("message"), dict) else None
        chat_id = chat["id"] if isinstance(chat, dict) and _is_id(chat.get("id")) else sender["id"]  # private chat id = user id
        data = query.get("data") if isinstance(query.get("data"), str) else None
        return _Work(
            _CALLBACK, update_id=update_id, user_id=sender["id"], chat_id=chat_id, username=_username(sender),
            text=data, callback_id=query["id"],
        )
    return None


def _username(sender: Dict[str, Any]) -> Optional[str]:
    username = sender.get("username")
    return normalise_text(username) if isinstance(username, str) else None
