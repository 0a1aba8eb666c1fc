"""action_request_handover: the queue entry, the log record, and an honest reply when Redis is down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis
from rasa_sdk.events import ActiveLoop
from rasa_sdk.executor import CollectingDispatcher

from actions import handover
from actions.clients import eventlog as eventlog_client
from actions.clients import redis_client
from actions.clients.handover import QUEUE_KEY, HandoverQueue, request_key
from actions.handover import ActionRequestHandover
from analytics.eventlog import BufferedStreamWriter
from analytics.schema import HANDOVER_REQUESTED, LogEvent
from tests.actions.conftest import EventLog, action_event, make_tracker, user_event
from tests.conftest import free_port


async def someone_there(team: str, now: float) -> None:
    return None


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[HandoverQueue]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield HandoverQueue(client)
    await client.aclose()


def stored(redis_url: str) -> tuple:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return client.zrange(QUEUE_KEY, 0, -1, withscores=True), client.hgetall(request_key("conv-h"))
    finally:
        client.close()


async def test_the_conversation_is_queued_and_logged(queue: HandoverQueue, event_log: EventLog, redis_url: str) -> None:
    action = ActionRequestHandover(queue=queue, writer=event_log.writer, clock=lambda: 1700000000.25, availability=someone_there)
    tracker = make_tracker("I want to talk to a human about my invoice", "request_human", sender_id="conv-h", channel="portal", metadata={"product": "Forms"})
    dispatcher = CollectingDispatcher()
    assert await action.run(dispatcher, tracker, {}) == []
    assert dispatcher.messages[0]["text"] == handover.QUEUED
    members, request = stored(redis_url)
    assert members == [("conv-h", 1700000000.25)]
    assert request == {"channel": "portal", "reason": "I want to talk to a human about my invoice", "requested_at": "1700000000.25",
                       "team": "support", "trigger": "asked_for_person"}
    (record,) = await event_log.records(HANDOVER_REQUESTED)
    assert record.channel == "portal"
    assert record.data == {
        "reason": "I want to talk to a human about my invoice",
        "requested_at": 1700000000.25,
        "context": {"product": "Forms"},
        "team": "support",
        "trigger": "asked_for_person",
        "queued": True,
        "already_waiting": False,
    }


async def test_a_button_press_uses_the_last_typed_words_as_the_reason(queue: HandoverQueue, event_log: EventLog, redis_url: str) -> None:
    history = [action_event("action_listen"), user_event("my SSO login loops forever", "report_problem")]
    tracker = make_tracker("/request_human", "request_human", sender_id="conv-h", history=history)
    await ActionRequestHandover(queue=queue, writer=event_log.writer).run(CollectingDispatcher(), tracker, {})
    _, request = stored(redis_url)
    assert request["reason"] == "my SSO login loops forever"


async def test_asking_twice_keeps_the_place(queue: HandoverQueue, event_log: EventLog, redis_url: str) -> None:
    times = iter([100.0, 200.0])
    action = ActionRequestHandover(queue=queue, writer=event_log.writer, clock=lambda: next(times), availability=someone_there)
    tracker = make_tracker("human please", "request_human", sender_id="conv-h")
    await action.run(CollectingDispatcher(), tracker, {})
    dispatcher = CollectingDispatcher()
    await action.run(dispatcher, tracker, {})
    assert dispatcher.messages[0]["text"] == handover.ALREADY_QUEUED
    members, _ = stored(redis_url)
    assert members == [("conv-h", 100.0)]
    first, second = await event_log.records(HANDOVER_REQUESTED)
    assert (first.data["already_waiting"], second.data["already_waiting"]) == (False, True)


async def test_no_one_available_opens_a_ticket_that_says_when(queue: HandoverQueue, event_log: EventLog, redis_url: str) -> None:
    async def away(team: str, now: float) -> str:
        assert team == "support"
        return "on Monday at 08:00 (Europe/Berlin)"

    action = ActionRequestHandover(queue=queue, writer=event_log.writer, clock=lambda: 500.0, availability=away)
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, make_tracker("a person please, my export fails", "request_human", sender_id="conv-h"), {})
    assert events == [ActiveLoop("handover_contact_form")]  # no verified e-mail known: ask how to reach them
    text = dispatcher.messages[0]["text"]
    assert "back on Monday at 08:00 (Europe/Berlin)" in text and "top of their queue" in text
    _, request = stored(redis_url)
    assert request["ticket"] == "1"
    (record,) = await event_log.records(HANDOVER_REQUESTED)
    assert record.data["ticket"] is True


async def test_redis_down_still_promises_follow_up_and_buffers_the_record(tmp_path: Path) -> None:
    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    spool = tmp_path / "spool.jsonl"
    writer = BufferedStreamWriter(dead_url, spool_path=spool, socket_timeout=0.2, max_backoff=0.1)
    writer.start()
    dead_queue = HandoverQueue(aioredis.Redis.from_url(dead_url, socket_connect_timeout=0.3), timeout=0.5)
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("get me a person", "request_human", sender_id="conv-down")
    assert await ActionRequestHandover(queue=dead_queue, writer=writer).run(dispatcher, tracker, {}) == []
    assert dispatcher.messages[0]["text"] == handover.QUEUE_DOWN
    assert writer.pending == 1
    await writer.close(timeout=0.3)
    (line,) = spool.read_text().splitlines()
    record = LogEvent.from_fields(json.loads(line))
    assert (record.type, record.conversation_id, record.data["queued"]) == (HANDOVER_REQUESTED, "conv-down", False)
    assert "could not queue" in record.data["error"]


async def test_with_no_injection_it_uses_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ENGAGE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(redis_client, "_shared", None)
    monkeypatch.setattr(eventlog_client, "_shared", None)
    tracker = make_tracker("a human, please", "request_human", sender_id="conv-h")
    try:
        await ActionRequestHandover().run(CollectingDispatcher(), tracker, {})
    finally:
        await eventlog_client.close_shared_writer()
        await redis_client.close_shared_client()
    members, request = stored(redis_url)
    assert [m for m, _ in members] == ["conv-h"] and request["reason"] == "a human, please"
    client = redis.Redis.from_url(redis_url)
    try:
        types = [LogEvent.from_fields(f).type for _, f in client.xrange("engage:events")]
    finally:
        client.close()
    assert types == [HANDOVER_REQUESTED]


async def test_a_chatwoot_conversation_is_left_to_chatwoots_people(queue: HandoverQueue, event_log: EventLog) -> None:
    async def never(team: str, now: float) -> str:
        raise AssertionError("Engage's hours and presence say nothing of Chatwoot's agents")

    action = ActionRequestHandover(queue=queue, writer=event_log.writer, availability=never)
    dispatcher = CollectingDispatcher()
    assert await action.run(dispatcher, make_tracker("a person please", "request_human", sender_id="chatwoot:1:9"), {}) == []
    assert dispatcher.messages[0]["text"] == handover.QUEUED
