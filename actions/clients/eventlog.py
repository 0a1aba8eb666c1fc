"""The action server's interaction-log writer (one per event loop) and LogEvents built from a Tracker."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping, Optional, Protocol, Tuple

from rasa_sdk import Tracker

from actions.clients import settings
from actions.conversation import latest_intent, latest_metadata, latest_text
from analytics.eventlog import BufferedStreamWriter
from analytics.schema import SOURCE_ACTION, LogEvent

logger = logging.getLogger(__name__)


class EventSink(Protocol):
    """What the actions need from a writer: BufferedStreamWriter fits."""

    def submit(self, event: LogEvent) -> None: ...


_shared: Optional[Tuple[asyncio.AbstractEventLoop, BufferedStreamWriter]] = None


def shared_writer() -> BufferedStreamWriter:
    """The process's writer, created and started on first use inside the running loop.

    The writer's background task and events belong to one loop; if the loop
    changes (a test harness, a restarted server), a fresh writer is made for it.
    """
    global _shared
    loop = asyncio.get_running_loop()
    if _shared is not None and _shared[0] is loop:
        return _shared[1]
    if _shared is not None:
        logger.warning("event log: the event loop changed; starting a new writer (the old one is left to its loop)")
    spool = settings.spool_path()
    writer = BufferedStreamWriter(settings.redis_url(), spool_path=spool)
    writer.start()
    _shared = (loop, writer)
    logger.info("event log: writing to %s (spool %s)", _redacted(settings.redis_url()), spool)
    return writer


async def close_shared_writer(timeout: float = 5.0) -> None:
    """Flush what Redis takes, spool the rest. Call at shutdown, inside the writer's loop."""
    global _shared
    if _shared is None:
        return
    loop, writer = _shared
    _shared = None
    if loop is not asyncio.get_running_loop():
        logger.warning("event log: not closing a writer that belongs to another event loop")
        return
    await writer.close(timeout)
    logger.info("event log: closed (%d records written by this process)", writer.written)


def event_from_tracker(
    tracker: Tracker,
    event_type: str,
    data: Optional[Mapping[str, Any]] = None,
    *,
    text: Optional[str] = None,
) -> LogEvent:
    """A semantic log record about the conversation's latest message."""
    intent = latest_intent(tracker)
    confidence = intent.get("confidence")
    return LogEvent(
        type=event_type,
        conversation_id=str(tracker.sender_id),
        source=SOURCE_ACTION,
        channel=str(tracker.get_latest_input_channel() or ""),
        text=latest_text(tracker) if text is None else text,
        intent=str(intent.get("name") or ""),
        confidence=float(confidence) if isinstance(confidence, (int, float)) else None,
        metadata=dict(latest_metadata(tracker)),
        data=dict(data or {}),
    )


def _redacted(url: str) -> str:
    # Never log a password from REDIS_URL.
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url

