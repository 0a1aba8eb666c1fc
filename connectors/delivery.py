"""Handing a checked message to Rasa, for every connector: the customer never gets silence.

`deliver` names the channel for the event broker, runs the message through Rasa, and when
nothing was sent (action server down, a handling error) sends the apology through the same
output channel and writes a `reply_failed` record saying why; silence is right only while the
conversation is paused (a staff member owns it, connectors.proactive).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Coroutine, Dict, Optional

from rasa.core.channels.channel import CollectingOutputChannel, OutputChannel, UserMessage
from sanic import Sanic

from analytics.schema import MESSAGE_DROPPED, REPLY_UNDELIVERED, SOURCE_CONNECTOR, LogEvent
from connectors.replies import (
    ACTION_SERVER_NOT_PROBED,
    APOLOGY_TEXT,
    DEFAULT_HEALTH_TIMEOUT,
    REASON_CANCELLED,
    diagnose,
    find_event_broker,
    publish,
    record_reply_failed,
)
from connectors.requests import spawn

logger = logging.getLogger(__name__)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]
Undelivered = Callable[[str, str, str], None]  # (conversation id, message type, why)


class CountingOutput(OutputChannel):
    """Wraps an output channel and counts what goes out, to tell a reply from silence.

    Every sending method is forwarded to the wrapped channel as it is, so the channel's
    own formatting (quick replies, attachments) is kept.
    """

    def __init__(self, inner: OutputChannel) -> None:
        self.inner = inner
        self.sent = 0

    @classmethod
    def name(cls) -> str:
        return "counting"

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.inner, attribute)


def _forward(method: str) -> Callable[..., Awaitable[None]]:
    async def forward(self: CountingOutput, *args: Any, **kwargs: Any) -> None:
        self.sent += 1  # send_response is forwarded whole, so it counts once too
        await getattr(self.inner, method)(*args, **kwargs)

    forward.__name__ = method
    return forward


for _method in (
    "send_response",
    "send_text_message",
    "send_text_with_buttons",
    "send_quick_replies",
    "send_image_url",
    "send_attachment",
    "send_elements",
    "send_custom_json",
):
    setattr(CountingOutput, _method, _forward(_method))


def sent_count(output: OutputChannel) -> int:
    if isinstance(output, CollectingOutputChannel):
        return len(output.messages)
    if isinstance(output, CountingOutput):
        return output.sent
    raise TypeError(f"cannot tell whether {type(output).__name__} sent anything; wrap it in CountingOutput")


async def deliver(
    app: Sanic, message: UserMessage, on_new_message: OnNewMessage, health_timeout: float = DEFAULT_HEALTH_TIMEOUT
) -> None:
    """Run `message` through Rasa; apologise through its output channel when nothing was sent."""
    broker = find_event_broker(app)
    channel = message.input_channel or "unknown"
    if broker is not None:
        broker.remember_channel(message.sender_id, channel)
    error: Optional[Exception] = None
    try:
        await hold_pause_across_sessions(app, message)
        await on_new_message(message)
    except asyncio.CancelledError:
        _record(app, message, {"reason": REASON_CANCELLED, "action_server": ACTION_SERVER_NOT_PROBED})
        raise
    except Exception as exc:  # the customer still gets an answer; the details go to the log
        logger.exception("%s: handling a message from %s failed", channel, message.sender_id)
        error = exc
    if sent_count(message.output_channel) and error is None:
        return
    if error is None and await _paused(app, message.sender_id):
        return  # a person owns the conversation (connectors.proactive): the bot is silent on purpose
    _record(app, message, await diagnose(app, error, health_timeout))
    # Anything said before a failure is kept; the apology comes last.
    await message.output_channel.send_text_message(message.sender_id, APOLOGY_TEXT)


async def hold_pause_across_sessions(app: Sanic, message: UserMessage) -> None:
    """Keep the bot silent when a person owns the conversation and this message starts a new session.

    Rasa starts a new session (action_session_start) when the last customer message is older than
    the session expiry, and a new session is not paused: a customer answering an agent's reply a day
    later would get the bot again. For a conversation someone owns (`owner` in its handover request,
    console/handover/store.py), the new session is started here first, under the conversation's
    lock, and paused again; Rasa then finds a fresh, paused session. One HGET per message otherwise.
    """
    from analytics.schema import handover_request_key

    agent = getattr(app.ctx, "agent", None)
    processor = getattr(agent, "processor", None)
    red = getattr(getattr(agent, "tracker_store", None), "red", None)  # the Redis tracker store's client: the same Redis
    if processor is None or agent.lock_store is None or red is None:
        return
    try:
        key = handover_request_key(message.sender_id)
        owner = await asyncio.get_running_loop().run_in_executor(None, red.hget, key, "owner")
    except Exception as exc:  # Redis away: Rasa's own handling will say so
        logger.warning("could not tell whether %s is owned by a person: %s", message.sender_id, exc)
        return
    if not owner:
        return
    from rasa.shared.core.events import ConversationPaused

    async with agent.lock_store.lock(message.sender_id):
        tracker = await processor.get_tracker(message.sender_id)
        if not tracker.is_paused() or not processor._has_session_expired(tracker):
            return
        await processor._update_tracker_session(tracker, message.output_channel, message.metadata)
        tracker.update(ConversationPaused())
        await processor.save_tracker(tracker)
        logger.info("%s: a new session of a conversation %s owns stays paused", message.sender_id, owner)


async def _paused(app: Sanic, conversation_id: str) -> bool:
    """True when the stored conversation is paused (ConversationPaused: a staff member has it)."""
    store = getattr(getattr(app.ctx, "agent", None), "tracker_store", None)
    if store is None:
        return False
    try:
        tracker = await store.retrieve(conversation_id)
    except Exception:  # the apology path goes on; its record says what failed
        logger.exception("could not read the tracker of %s to see whether it is paused", conversation_id)
        return False
    return bool(tracker is not None and tracker.is_paused())


def _record(app: Sanic, message: UserMessage, data: Dict[str, Any]) -> None:
    record_reply_failed(
        app,
        conversation_id=message.sender_id,
        channel=message.input_channel or "unknown",
        text=message.text or "",  # as Rasa saw it (stripped)
        message_id=message.message_id,
        data=data,
        metadata=message.metadata,
    )


def record_connector_event(
    app: Sanic, kind: str, conversation_id: str, channel: str, data: Dict[str, Any], text: str = ""
) -> None:
    """A record of what a connector did on its own (refused text, unsupported media, linked identity)."""
    publish(app, LogEvent(type=kind, conversation_id=conversation_id, source=SOURCE_CONNECTOR, channel=channel, text=text, data=data))


def drop_message(
    app: Sanic,
    channel: str,
    conversation_id: str,
    reason: str,
    *,
    message_id: str,
    text: str,
    notice: Optional[Coroutine[Any, Any, None]] = None,
    who: Optional[str] = None,
) -> None:
    """A message a webhook channel acknowledged but will not hand to Rasa (its sender sends too fast,
    or too much is waiting): a message_dropped record with its text, and `notice` (the "slow down"
    reply, at most one per sender now and then) sent in the background. `who` names the sender in
    the log line when the conversation id should not appear there (a phone number)."""
    logger.warning("%s: dropped message %s from %s: %s", channel, message_id[:80], who or conversation_id, reason)
    record_connector_event(app, MESSAGE_DROPPED, conversation_id, channel, {"reason": reason, "message_id": message_id}, text=text)
    if notice is not None:
        spawn(app, notice)


def undelivered_recorder(app: Sanic, channel: str) -> Undelivered:
    """Records a reply the provider refused even after the retries, so staff can see who missed what."""

    def record(conversation_id: str, kind: str, reason: str) -> None:
        record_connector_event(app, REPLY_UNDELIVERED, conversation_id, channel, {"message_type": kind, "error": reason[:500]})

    return record
