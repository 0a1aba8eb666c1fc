"""RedisStreamEventBroker against a real redis-server, fed real Rasa events."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any, Dict, List

import pytest
import redis
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.core.utils import read_endpoints_from_path
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    BotUttered,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from analytics.schema import EVENTS_STREAM, REPLY_FAILED, SCHEMA_VERSION, SOURCE_CONNECTOR, SOURCE_RASA, LogEvent
from bot.broker import BrokerConfigError, ChannelMemory, RedisStreamEventBroker, default_spool_path
from tests.conftest import RedisServer, free_port


def read_stream(url: str, stream: str = EVENTS_STREAM) -> List[LogEvent]:
    client = redis.Redis.from_url(url)
    try:
        return [LogEvent.from_fields(fields) for _, fields in client.xrange(stream)]
    finally:
        client.close()


def tracked(sender: str, event: Event) -> Dict[str, Any]:
    """The body TrackerStore._stream_new_events hands to `publish`."""
    body: Dict[str, Any] = {"sender_id": sender}
    body.update(event.as_dict())
    return body


def user(
    text: str, intent: str = "greet", confidence: float = 0.93, channel: str = "rest", **metadata: Any
) -> UserUttered:
    parse = {"intent": {"name": intent, "confidence": confidence}, "entities": [], "text": text}
    return UserUttered(text, intent=parse["intent"], parse_data=parse, input_channel=channel, metadata=metadata)


def make_broker(url: str, tmp_path: Path, **kwargs: Any) -> RedisStreamEventBroker:
    return RedisStreamEventBroker(url, spool_path=tmp_path / "spool" / "events.jsonl", **kwargs)


async def test_tracker_events_land_in_the_stream_with_channel_intent_and_metadata(
    redis_url: str, tmp_path: Path
) -> None:
    broker = make_broker(redis_url, tmp_path)
    broker.start()
    events: List[Event] = [
        user("the new dashboard is great", intent="give_feedback", confidence=0.87, product="insights", page="/dash"),
        ActionExecuted("action_capture_feedback", policy="RulePolicy", confidence=1.0),
        BotUttered("Thanks for telling us!", metadata={"utter_action": "utter_thanks"}),
        SlotSet("idea_summary", "dark mode"),
        ActiveLoop("idea_form"),
    ]
    for event in events:
        broker.publish(tracked("cust-1", event))
    await broker.close()

    records = read_stream(redis_url)
    assert [r.type for r in records] == ["user", "action", "bot", "slot", "active_loop"]
    assert {r.conversation_id for r in records} == {"cust-1"}
    # Rasa puts input_channel on the user event only; the broker carries it to the rest.
    assert {r.channel for r in records} == {"rest"}
    assert {r.source for r in records} == {SOURCE_RASA}
    assert {r.schema_version for r in records} == {SCHEMA_VERSION}
    assert [r.timestamp for r in records] == pytest.approx([e.timestamp for e in events])
    first = records[0]
    assert (first.text, first.intent, first.confidence) == ("the new dashboard is great", "give_feedback", 0.87)
    assert first.metadata == {"product": "insights", "page": "/dash"}
    assert records[1].data == {"name": "action_capture_feedback", "policy": "RulePolicy", "confidence": 1.0}
    assert records[2].text == "Thanks for telling us!"
    assert records[3].data == {"name": "idea_summary", "value": "dark mode"}
    assert len({r.event_id for r in records}) == len(records)


async def test_events_published_by_a_real_tracker_store_save(redis_url: str, tmp_path: Path) -> None:
    broker = make_broker(redis_url, tmp_path)
    broker.start()
    store = InMemoryTrackerStore(Domain.empty(), event_broker=broker)
    tracker = DialogueStateTracker.from_events(
        "web-7",
        [
            ActionExecuted("action_session_start"),
            SessionStarted(),
            ActionExecuted("action_listen"),
            user("hi", channel="socketio"),
            ActionExecuted("utter_greet"),
            BotUttered("Hello! I'm the Quillstack assistant."),
            ActionExecuted("action_listen"),
        ],
    )
    broker.remember_channel("web-7", "socketio")  # as our connectors do before Rasa runs
    await store.save(tracker)
    await broker.close()

    records = read_stream(redis_url)
    assert [r.type for r in records] == [
        "action", "session_started", "action", "user", "action", "bot", "action",
    ]
    # Session-start events come before the user event; the connector's hint labels them.
    assert {r.channel for r in records} == {"socketio"}
    assert {r.conversation_id for r in records} == {"web-7"}


async def test_channel_follows_the_latest_user_event_per_conversation(redis_url: str, tmp_path: Path) -> None:
    broker = make_broker(redis_url, tmp_path)
    broker.start()
    broker.publish(tracked("a", user("hi", channel="telegram")))
    broker.publish(tracked("b", user("hi", channel="whatsapp")))
    broker.publish(tracked("a", BotUttered("hello a")))
    broker.publish(tracked("b", BotUttered("hello b")))
    broker.publish(tracked("a", user("still me", channel="portal")))
    broker.publish(tracked("a", BotUttered("hello again")))
    broker.publish(tracked("nobody-seen", BotUttered("proactive")))
    await broker.close()

    got = [(r.conversation_id, r.text, r.channel) for r in read_stream(redis_url)]
    assert got == [
        ("a", "hi", "telegram"),
        ("b", "hi", "whatsapp"),
        ("a", "hello a", "telegram"),
        ("b", "hello b", "whatsapp"),
        ("a", "still me", "portal"),
        ("a", "hello again", "portal"),
        ("nobody-seen", "proactive", ""),
    ]


def test_channel_memory_is_a_bounded_lru() -> None:
    memory = ChannelMemory(capacity=2)
    memory.remember("a", "rest")
    memory.remember("b", "telegram")
    assert memory.get("a") == "rest"  # touches a: b is now the oldest
    memory.remember("c", "whatsapp")
    assert (memory.get("a"), memory.get("b"), memory.get("c")) == ("rest", "", "whatsapp")
    assert len(memory) == 2
    with pytest.raises(ValueError):
        ChannelMemory(capacity=0)


async def test_connector_log_events_share_the_stream(redis_url: str, tmp_path: Path) -> None:
    broker = make_broker(redis_url, tmp_path)
    broker.start()
    record = LogEvent(
        type=REPLY_FAILED,
        conversation_id="cust-2",
        source=SOURCE_CONNECTOR,
        channel="rest",
        data={"reason": "no_reply"},
    )
    broker.publish_log_event(record)
    await broker.close()
    assert read_stream(redis_url) == [record]


async def test_bad_events_never_raise_and_never_stall_the_writer(redis_url: str, tmp_path: Path) -> None:
    broker = make_broker(redis_url, tmp_path)
    broker.start()
    # JSON can carry a lone surrogate; redis-py cannot encode it.
    broker.publish(tracked("cust-3", user("broken \ud800 text", channel="rest")))
    # A timestamp that is not a number makes the schema mapping fail.
    broker.publish({"sender_id": "cust-3", "event": "bot", "timestamp": "yesterday", "text": "x"})
    broker.publish(tracked("cust-3", BotUttered("still working")))
    assert await broker.flush(5.0)
    await broker.close()

    records = read_stream(redis_url)
    assert [r.type for r in records] == ["user", "bot", "bot"]
    assert records[0].text == "broken \\ud800 text"  # the writer escapes what UTF-8 cannot carry
    assert records[1].data == {"mapping_error": True} and records[1].conversation_id == "cust-3"
    assert records[2].text == "still working"
    assert broker.mapping_errors == 1


async def test_nothing_is_lost_when_redis_restarts_under_traffic(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    broker = make_broker(redis_url, tmp_path, batch_size=50, socket_timeout=0.5, close_timeout=20.0)
    broker.start()
    loop = asyncio.get_running_loop()
    published = 0

    async def pump(seconds: float) -> None:
        nonlocal published
        end = loop.time() + seconds
        while loop.time() < end:
            sender = f"cust-{published % 7}"
            broker.publish(tracked(sender, user(f"message {published}", channel="rest")))
            published += 1
            await asyncio.sleep(0.002)

    await pump(0.5)
    restart = threading.Thread(target=redis_server.restart, kwargs={"down_for": 1.0})
    restart.start()
    while restart.is_alive():
        await pump(0.1)
    await pump(0.5)
    assert await broker.flush(20.0), "writer did not catch up after Redis came back"
    await broker.close()

    records = read_stream(redis_url)
    assert broker.writer.failures > 0, "the restart never interrupted a write: the test proved nothing"
    assert len({r.event_id for r in records}) == published
    assert len(records) == published  # a batch whose reply was lost is checked for, not written twice
    assert not (tmp_path / "spool" / "events.jsonl").exists()


async def test_close_spools_when_redis_is_down_and_next_start_replays(redis_url: str, tmp_path: Path) -> None:
    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    spool = tmp_path / "spool" / "events.jsonl"
    down = RedisStreamEventBroker(dead_url, spool_path=spool, socket_timeout=0.2, close_timeout=0.5)
    down.start()
    for i in range(25):
        down.publish(tracked("cust-4", user(f"while down {i}", channel="rest")))
    await down.close()
    spooled = [json.loads(line) for line in spool.read_text().splitlines()]
    assert len(spooled) == 25

    up = RedisStreamEventBroker(redis_url, spool_path=spool)
    up.start()
    assert await up.flush(5.0)
    await up.close()
    records = read_stream(redis_url)
    assert sorted(r.event_id for r in records) == sorted(s["event_id"] for s in spooled)
    assert [r.text for r in records] == [f"while down {i}" for i in range(25)]
    assert not spool.exists()


async def test_lifecycle_ready_only_between_start_and_close(redis_url: str, tmp_path: Path) -> None:
    broker = make_broker(redis_url, tmp_path)
    assert not broker.is_ready()
    broker.start()
    assert broker.is_ready()
    await broker.close()
    assert not broker.is_ready()
    await broker.close()  # idempotent: Rasa and our own shutdown may both call it
    assert read_stream(redis_url) == []


async def test_a_record_after_close_is_spooled_for_the_next_start(redis_url: str, tmp_path: Path) -> None:
    # A connector still answering a request while Rasa shuts down records its reply_failed
    # after Rasa has closed the broker: it used to be dropped.
    broker = make_broker(redis_url, tmp_path)
    broker.start()
    await broker.close()
    late = LogEvent(type=REPLY_FAILED, conversation_id="late", source=SOURCE_CONNECTOR, data={"reason": "cancelled"})
    broker.publish_log_event(late)
    broker.publish(tracked("late", BotUttered("after close")))
    assert read_stream(redis_url) == []

    again = make_broker(redis_url, tmp_path)
    again.start()
    assert await again.flush(5.0)
    await again.close()
    records = read_stream(redis_url)
    assert [(r.type, r.conversation_id) for r in records] == [(REPLY_FAILED, "late"), ("bot", "late")]
    assert records[0].event_id == late.event_id


def test_publish_without_a_running_loop_waits_in_the_buffer(tmp_path: Path) -> None:
    broker = make_broker("redis://127.0.0.1:1/0", tmp_path)
    broker.publish(tracked("cust-5", BotUttered("queued")))
    assert broker.writer.pending == 1 and not broker.is_ready()


async def test_rasa_loads_it_from_endpoints_yml(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(
        "event_broker:\n"
        "  type: bot.broker.RedisStreamEventBroker\n"
        "  url: ${REDIS_URL}\n"
        "  batch_size: 10\n"
    )
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ENGAGE_DATA_DIR", str(tmp_path / "data"))
    config = read_endpoints_from_path(str(endpoints)).event_broker
    broker = await EventBroker.create(config)  # the call rasa.core.agent.load_agent makes
    assert isinstance(broker, RedisStreamEventBroker) and broker.is_ready()
    broker.publish(tracked("cust-6", user("hello", channel="rest")))
    await broker.close()
    assert [r.text for r in read_stream(redis_url)] == ["hello"]
    assert default_spool_path() == tmp_path / "data" / "spool" / "rasa-events.jsonl"


async def test_endpoint_options_are_checked(redis_url: str, tmp_path: Path) -> None:
    def config(**kwargs: Any) -> EndpointConfig:
        return EndpointConfig(url=redis_url, type="bot.broker.RedisStreamEventBroker", **kwargs)

    with pytest.raises(BrokerConfigError, match="batchsize"):
        await EventBroker.create(config(batchsize=10))
    with pytest.raises(BrokerConfigError, match="batch_size"):
        await EventBroker.create(config(batch_size="many"))
    with pytest.raises(BrokerConfigError, match="REDIS_URL"):
        await EventBroker.create(EndpointConfig(type="bot.broker.RedisStreamEventBroker"))

    broker = await EventBroker.create(config(stream="engage:test", spool_path=str(tmp_path / "s.jsonl")))
    assert isinstance(broker, RedisStreamEventBroker)
    broker.publish(tracked("cust-7", BotUttered("custom stream")))
    await broker.close()
    assert [r.text for r in read_stream(redis_url, "engage:test")] == ["custom stream"]
    assert read_stream(redis_url) == []


async def test_starts_even_when_redis_is_down(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = EndpointConfig(
        url=f"redis://:secret@127.0.0.1:{free_port()}/0",
        type="bot.broker.RedisStreamEventBroker",
        spool_path=str(tmp_path / "s.jsonl"),
        socket_timeout=0.2,
        close_timeout=0.2,
    )
    broker = await EventBroker.create(config)
    assert isinstance(broker, RedisStreamEventBroker)
    assert "not reachable yet" in caplog.text and "secret" not in caplog.text
    broker.publish(tracked("cust-8", BotUttered("kept")))
    await broker.close()
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 1
