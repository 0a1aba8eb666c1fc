"""Fixtures for the action tests: real Trackers, a real log writer on a real Redis, reading the log back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Optional, Sequence

import pytest
import redis
from rasa_sdk import Tracker

from analytics.eventlog import BufferedStreamWriter
from analytics.schema import EVENTS_STREAM, LogEvent
from tests.knowledge_base.helpers import private_index_dir  # noqa: F401 - an autouse fixture


def user_event(
    text: str,
    intent: str = "ask_question",
    confidence: float = 0.95,
    entities: Sequence[Dict[str, Any]] = (),
    metadata: Optional[Dict[str, Any]] = None,
    channel: str = "rest",
) -> Dict[str, Any]:
    """A `user` event as Rasa 3.6 sends it to the action server."""
    parse_data = {
        "intent": {"name": intent, "confidence": confidence},
        "entities": list(entities),
        "text": text,
        "message_id": f"m-{time.monotonic_ns()}",
        "metadata": metadata or {},
        "intent_ranking": [{"name": intent, "confidence": confidence}],
    }
    return {
        "event": "user",
        "timestamp": time.time(),
        "text": text,
        "parse_data": parse_data,
        "input_channel": channel,
        "message_id": parse_data["message_id"],
        "metadata": metadata or {},
    }


def action_event(name: str) -> Dict[str, Any]:
    return {"event": "action", "timestamp": time.time(), "name": name, "policy": "RulePolicy", "confidence": 1.0}


def bot_event(text: str) -> Dict[str, Any]:
    return {"event": "bot", "timestamp": time.time(), "text": text, "data": {}, "metadata": {}}


def slot_event(name: str, value: Any) -> Dict[str, Any]:
    return {"event": "slot", "timestamp": time.time(), "name": name, "value": value}


def entity(name: str, value: Any) -> Dict[str, Any]:
    return {"entity": name, "value": value, "start": 0, "end": 0, "extractor": "DIETClassifier"}


def make_tracker(
    text: str,
    intent: str = "ask_question",
    *,
    confidence: float = 0.95,
    entities: Sequence[Dict[str, Any]] = (),
    metadata: Optional[Dict[str, Any]] = None,
    channel: str = "rest",
    sender_id: str = "conv-1",
    history: Sequence[Dict[str, Any]] = (),
    slots: Optional[Dict[str, Any]] = None,
    slot_candidates: Optional[Dict[str, Any]] = None,
    active_loop: Optional[str] = None,
    intent_ranking: Optional[List[Dict[str, Any]]] = None,
) -> Tracker:
    """A real Tracker whose latest event is the user's `text` (plus any slot candidates a form appended)."""
    latest = user_event(text, intent, confidence, entities, metadata, channel)
    if intent_ranking is not None:
        latest["parse_data"]["intent_ranking"] = intent_ranking
    events = [*history, action_event("action_listen"), latest]
    all_slots = dict(slots or {})
    for name, value in (slot_candidates or {}).items():
        events.append(slot_event(name, value))
        all_slots[name] = value
    return Tracker(
        sender_id=sender_id,
        slots=all_slots,
        latest_message=latest["parse_data"],
        events=events,
        paused=False,
        followup_action=None,
        active_loop={"name": active_loop} if active_loop else {},
        latest_action_name="action_listen",
    )


class EventLog:
    """A real BufferedStreamWriter on the test Redis, and the records read back from the stream."""

    def __init__(self, url: str, spool: Path) -> None:
        self.url = url
        self.writer = BufferedStreamWriter(url, spool_path=spool)

    async def records(self, event_type: Optional[str] = None) -> List[LogEvent]:
        assert await self.writer.flush(5), "the log writer did not drain"
        client = redis.Redis.from_url(self.url)
        try:
            events = [LogEvent.from_fields(fields) for _, fields in client.xrange(EVENTS_STREAM)]
        finally:
            client.close()
        return [e for e in events if event_type is None or e.type == event_type]


@pytest.fixture
async def event_log(redis_url: str, tmp_path: Path) -> AsyncIterator[EventLog]:
    log = EventLog(redis_url, tmp_path / "spool.jsonl")
    log.writer.start()
    yield log
    await log.writer.close()
