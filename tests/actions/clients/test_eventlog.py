"""The action server's log writer (lazy, per loop, env-configured) and LogEvents built from a Tracker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from actions.clients import eventlog
from actions.clients.eventlog import close_shared_writer, event_from_tracker, shared_writer
from analytics.schema import EVENTS_STREAM, FEEDBACK, SOURCE_ACTION, LogEvent
from tests.actions.conftest import make_tracker
from tests.conftest import free_port


def test_event_from_tracker_copies_the_conversation_facts() -> None:
    tracker = make_tracker(
        "search is slow", "give_feedback", confidence=0.87, metadata={"product": "Docs"}, channel="portal", sender_id="cust-9"
    )
    event = event_from_tracker(tracker, FEEDBACK, {"sentiment": "negative"})
    assert (event.type, event.conversation_id, event.source, event.channel) == (FEEDBACK, "cust-9", SOURCE_ACTION, "portal")
    assert (event.text, event.intent, event.confidence) == ("search is slow", "give_feedback", 0.87)
    assert event.metadata == {"product": "Docs"}
    assert event.data == {"sentiment": "negative"}
    assert LogEvent.from_fields(event.to_fields()) == event


def test_event_from_tracker_without_a_user_message() -> None:
    from rasa_sdk import Tracker

    event = event_from_tracker(Tracker("s", {}, {}, [], False, None, {}, None), FEEDBACK, text="override")
    assert (event.channel, event.intent, event.confidence, event.text) == ("", "", None, "override")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str) -> Path:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ENGAGE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(eventlog, "_shared", None)
    return tmp_path


async def test_shared_writer_is_created_on_first_use_and_reused(env: Path, redis_url: str) -> None:
    writer = shared_writer()
    try:
        assert shared_writer() is writer
        writer.submit(LogEvent(type=FEEDBACK, conversation_id="c1", source=SOURCE_ACTION))
    finally:
        await close_shared_writer()
    assert eventlog._shared is None
    client = redis.Redis.from_url(redis_url)
    try:
        (entry,) = client.xrange(EVENTS_STREAM)
    finally:
        client.close()
    assert LogEvent.from_fields(entry[1]).conversation_id == "c1"


async def test_a_new_event_loop_gets_a_new_writer(env: Path) -> None:
    writer = shared_writer()
    other_loop = object()
    eventlog._shared = (other_loop, writer)  # as if created by a loop that is gone
    try:
        assert shared_writer() is not writer
    finally:
        await close_shared_writer()
        await writer.close()


async def test_records_go_to_the_spool_file_when_redis_is_down(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    writer = shared_writer()
    writer.submit(LogEvent(type=FEEDBACK, conversation_id="offline", source=SOURCE_ACTION))
    await close_shared_writer(timeout=0.5)
    spool = env / "spool" / "actions-events.jsonl"
    (line,) = spool.read_text().splitlines()
    assert LogEvent.from_fields(json.loads(line)).conversation_id == "offline"


async def test_closing_without_a_writer_is_harmless(env: Path) -> None:
    await close_shared_writer()


def test_passwords_are_not_logged() -> None:
    assert eventlog._redacted("redis://:hunter2@db.internal:6379/0") == "redis://***@db.internal:6379/0"
    assert eventlog._redacted("redis://127.0.0.1:6390/0") == "redis://127.0.0.1:6390/0"
