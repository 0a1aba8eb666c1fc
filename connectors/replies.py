"""What a connector says and records when Rasa leaves the customer without a reply.

Rasa 3.6 swallows custom-action failures (`MessageProcessor._run_action` logs the
exception, drops the action's events and carries on), so when the action server
is down the customer simply gets silence. Connectors call `report_reply_failed`
after handling a message that produced nothing and send `APOLOGY_TEXT` instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Dict, Optional
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from sanic import Sanic

from analytics.schema import REPLY_FAILED, SOURCE_CONNECTOR, LogEvent
from connectors.messages import APOLOGY_TEXT
from bot.broker import RedisStreamEventBroker

logger = logging.getLogger(__name__)

# `data.reason` of a reply_failed record.
REASON_AGENT_NOT_READY = "agent_not_ready"  # no model loaded (or no agent at all)
REASON_HANDLER_ERROR = "handler_error"  # handling the message raised
REASON_ACTION_SERVER_UNREACHABLE = "action_server_unreachable"
REASON_NO_REPLY = "no_reply"  # handled without error, action server up, nothing said
REASON_CANCELLED = "cancelled"  # request timed out or the client went away

# `data.action_server` of a reply_failed record.
ACTION_SERVER_UP = "up"
ACTION_SERVER_DOWN = "down"
ACTION_SERVER_UNHEALTHY = "unhealthy"  # answered /health with a non-200 status
ACTION_SERVER_UNCONFIGURED = "unconfigured"
ACTION_SERVER_NOT_PROBED = "not_probed"

DEFAULT_HEALTH_TIMEOUT = 1.0


def health_url(action_url: str) -> str:
    """`http://host:5055/webhook` -> `http://host:5055/health` (rasa-sdk serves both)."""
    parts = urlsplit(action_url)
    path = parts.path.rstrip("/")
    if path.endswith("/webhook"):
        path = path[: -len("/webhook")]
    return urlunsplit((parts.scheme, parts.netloc, path + "/health", "", ""))


async def probe_action_server(action_url: Optional[str], timeout: float = DEFAULT_HEALTH_TIMEOUT) -> str:
    """Ask the action server's /health, giving up after `timeout` seconds."""
    if not action_url:
        return ACTION_SERVER_UNCONFIGURED
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(health_url(action_url)) as response:
                return ACTION_SERVER_UP if response.status == 200 else ACTION_SERVER_UNHEALTHY
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
        return ACTION_SERVER_DOWN


def find_event_broker(app: Sanic) -> Optional[RedisStreamEventBroker]:
    """Our broker, reached as Rasa wires it: app.ctx.agent.tracker_store.event_broker."""
    agent = getattr(app.ctx, "agent", None)
    tracker_store = getattr(agent, "tracker_store", None)
    broker = getattr(tracker_store, "event_broker", None)
    return broker if isinstance(broker, RedisStreamEventBroker) else None


def _action_url(app: Sanic) -> Optional[str]:
    endpoint = getattr(getattr(app.ctx, "agent", None), "action_endpoint", None)
    return getattr(endpoint, "url", None)


def _agent_ready(app: Sanic) -> bool:
    agent = getattr(app.ctx, "agent", None)
    return agent is not None and bool(agent.is_ready())


async def diagnose(
    app: Sanic, error: Optional[BaseException], timeout: float = DEFAULT_HEALTH_TIMEOUT
) -> Dict[str, Any]:
    """Say why a message got no reply: the `data` of the reply_failed record."""
    action_server = await probe_action_server(_action_url(app), timeout)
    data: Dict[str, Any] = {"action_server": action_server}
    if not _agent_ready(app):
        data["reason"] = REASON_AGENT_NOT_READY
    elif error is not None:
        data["reason"] = REASON_HANDLER_ERROR
    elif action_server in (ACTION_SERVER_DOWN, ACTION_SERVER_UNHEALTHY):
        data["reason"] = REASON_ACTION_SERVER_UNREACHABLE
    else:
        data["reason"] = REASON_NO_REPLY
    if error is not None:
        data["error"] = f"{type(error).__name__}: {error}"[:300]
    return data


def record_reply_failed(
    app: Sanic,
    *,
    conversation_id: str,
    channel: str,
    text: str,
    message_id: str,
    data: Dict[str, Any],
    metadata: Optional[Dict[str, Any]] = None,
) -> Optional[LogEvent]:
    """Write a reply_failed record through our event broker; None if it is not configured."""
    record = LogEvent(
        type=REPLY_FAILED,
        conversation_id=conversation_id,
        source=SOURCE_CONNECTOR,
        channel=channel,
        text=text,
        metadata=dict(metadata or {}),
        data={**data, "message_id": message_id, "reply": APOLOGY_TEXT},
    )
    logger.warning(
        "reply failed for conversation %s on %s: %s", conversation_id, channel, data.get("reason")
    )
    return record if publish(app, record) else None


def publish(app: Sanic, record: LogEvent) -> bool:
    """Write a connector's record through our event broker; False (and an error logged) if it is not configured."""
    broker = find_event_broker(app)
    if broker is None:
        logger.error("no RedisStreamEventBroker configured: %s for %s not recorded", record.type, record.conversation_id)
        return False
    broker.publish_log_event(serialisable(record))
    return True


def serialisable(record: LogEvent) -> LogEvent:
    """`record` with a stand-in for metadata or data that JSON cannot carry (nested too deep for the
    encoder, circular), so the record is still written rather than lost with its reason."""
    for name in ("metadata", "data"):
        try:
            json.dumps(getattr(record, name), separators=(",", ":"), default=str)
        except (RecursionError, ValueError, TypeError) as exc:
            logger.warning("%s record for %s: %s not serialisable (%s)", record.type, record.conversation_id, name, type(exc).__name__)
            setattr(record, name, {"unserialisable": f"{type(exc).__name__}: {exc}"[:200]})
    return record
