"""REST chat channel: Rasa's `/webhooks/rest/webhook` with input guards and no silent failures."""

from __future__ import annotations

import logging
from typing import Any, Dict, FrozenSet, List, Optional

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from analytics.customers import CUSTOMER_ID
from connectors.delivery import OnNewMessage, deliver
from connectors.errors import ConnectorConfigError, RequestRejected
from connectors.limits import REQUEST_KEYS, REQUEST_LIMITS, Limiter, RateLimits
from connectors.options import Options
from connectors.payload import CHANNEL_PATTERN, InboundMessage, PayloadLimits, parse_rest_payload
from connectors.requests import client_address, read_body
from connectors.replies import DEFAULT_HEALTH_TIMEOUT, find_event_broker

logger = logging.getLogger(__name__)

_LIMITS = ("max_message_chars", "max_metadata_bytes", "max_body_bytes")  # PayloadLimits' fields


def refuse_customer_ids(sender_id: str) -> None:
    """A REST caller names its own sender, so it must never name a customer.

    Customer ids (`C-...`) are conversation ids only the verified channels (web chat session,
    portal JWT, WhatsApp number, Telegram user, e-mail code) resolve to; a REST message as
    `C-...` would continue, and could link an e-mail to, somebody else's conversation.
    """
    if CUSTOMER_ID.match(sender_id):
        raise RequestRejected(
            403,
            "reserved_sender",
            "Sender ids of the form C-<16 hex digits> belong to verified customers; choose another sender id.",
            ["sender"],
        )


class EngageRestInput(InputChannel):
    """Drop-in for Rasa's `rest` channel (same URL, same request and reply shape).

    Differences: malformed, oversized or unexpected payloads are refused with a
    JSON error before Rasa sees them, `?stream=true` is refused, and a message
    that gets no reply (action server down, handling error) gets an apology and a
    `reply_failed` record instead of an empty list. There is no idempotency key:
    a retried POST is handled as a new message, exactly as Rasa's `rest` does.
    A sender or client address that sends too fast, or a sender with too many messages
    still waiting for Rasa, gets 429 with Retry-After (`rate_limits`, connectors.limits).
    """

    OPTIONS = {
        "max_message_chars": int,
        "max_metadata_bytes": int,
        "max_body_bytes": int,
        "allowed_input_channels": list,
        "health_timeout": float,
        "rate_limits": object,  # a mapping, or false (connectors.limits.RateLimits.read)
    }

    def __init__(
        self,
        limits: PayloadLimits = PayloadLimits(),
        *,
        allowed_input_channels: FrozenSet[str] = frozenset(),
        health_timeout: float = DEFAULT_HEALTH_TIMEOUT,
        rate_limits: RateLimits = REQUEST_LIMITS,
    ) -> None:
        self.limits = limits
        self.allowed_input_channels = allowed_input_channels
        self.health_timeout = health_timeout
        self.limiter = Limiter(rate_limits)

    @classmethod
    def name(cls) -> str:
        # Same name as Rasa's RestInput, so the URL stays /webhooks/rest/webhook.
        return "rest"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> "EngageRestInput":
        """Build from `connectors.rest.EngageRestInput:` in credentials.yml (all options optional)."""
        options = Options.read(f"{__name__}.EngageRestInput", credentials, cls.OPTIONS)
        options.positive(*_LIMITS, "health_timeout")
        values = options.values
        channels = values.get("allowed_input_channels", [])
        if not all(isinstance(c, str) and CHANNEL_PATTERN.fullmatch(c) for c in channels):
            raise ConnectorConfigError(
                f"{options.owner}: allowed_input_channels must be a list of short lower-case names"
            )
        return cls(
            PayloadLimits(**{key: values[key] for key in _LIMITS if key in values}),
            allowed_input_channels=frozenset(channels),
            health_timeout=values.get("health_timeout", DEFAULT_HEALTH_TIMEOUT),
            rate_limits=RateLimits.read(options.owner, values.get("rate_limits"), REQUEST_LIMITS, REQUEST_KEYS),
        )

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        webhook = Blueprint("engage_rest_webhook")

        # Rasa drops a broker it cannot import with only a warning
        # (rasa.core.brokers.broker._load_from_module_name_in_endpoint_config),
        # so say loudly at start-up when the interaction log is off.
        @webhook.listener("after_server_start")
        async def check_event_broker(app: Sanic, _: Any) -> None:
            if find_event_broker(app) is None:
                logger.error(
                    "rest: no RedisStreamEventBroker on app.ctx.agent.tracker_store: tracker events and "
                    "reply_failed records will not reach the interaction log (check event_broker in endpoints.yml)"
                )

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        # stream=True: Sanic hands over the body unread, so an oversized one is
        # refused after max_body_bytes instead of being buffered (up to 100 MB) first.
        @webhook.route("/webhook", methods=["POST"], stream=True)
        async def receive(request: Request) -> HTTPResponse:
            try:
                self.limiter.check_address(client_address(request, self.limiter))
                if request.args.get("stream", "").lower() == "true":
                    raise RequestRejected(400, "stream_unsupported", "Streaming replies are not supported here.")
                inbound = parse_rest_payload(
                    await read_body(request, self.limits.max_body_bytes),
                    self.limits,
                    default_channel=self.name(),
                    allowed_channels=self.allowed_input_channels,
                )
                refuse_customer_ids(inbound.sender_id)
                with self.limiter.admit(inbound.sender_id):
                    return response.json(await self.handle(request.app, inbound, on_new_message))
            except RequestRejected as rejected:
                logger.info("rest: rejected a request (%s): %s", rejected.code, rejected.detail)
                return response.json(rejected.body(), status=rejected.status, headers=rejected.headers())

        return webhook

    async def handle(
        self, app: Sanic, inbound: InboundMessage, on_new_message: OnNewMessage
    ) -> List[Dict[str, Any]]:
        """Pass a validated message to Rasa; return the replies (an apology if there are none)."""
        collector = CollectingOutputChannel()
        message = UserMessage(
            inbound.text,
            collector,
            inbound.sender_id,
            input_channel=inbound.input_channel,
            metadata=inbound.metadata,
        )
        await deliver(app, message, on_new_message, self.health_timeout)
        return collector.messages
