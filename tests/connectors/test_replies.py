"""Failure diagnosis for connectors: action-server probe and reply_failed records."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

from rasa.core.agent import Agent
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.utils.endpoints import EndpointConfig

from analytics.schema import REPLY_FAILED, SOURCE_CONNECTOR
from bot.broker import RedisStreamEventBroker
from connectors.replies import (
    ACTION_SERVER_DOWN,
    ACTION_SERVER_UNCONFIGURED,
    ACTION_SERVER_UNHEALTHY,
    ACTION_SERVER_UP,
    APOLOGY_TEXT,
    REASON_AGENT_NOT_READY,
    diagnose,
    find_event_broker,
    health_url,
    probe_action_server,
    record_reply_failed,
)
from tests.connectors.support import action_server, dead_action_url, new_app, read_stream


def test_health_url_sits_next_to_the_webhook() -> None:
    assert health_url("http://actions:5055/webhook") == "http://actions:5055/health"
    assert health_url("http://actions:5055/webhook/") == "http://actions:5055/health"
    assert health_url("https://example.com/bots/actions/webhook?x=1") == "https://example.com/bots/actions/health"
    assert health_url("http://actions:5055") == "http://actions:5055/health"


async def test_probe_tells_up_from_down_and_unhealthy() -> None:
    async with action_server() as url:
        assert await probe_action_server(url) == ACTION_SERVER_UP
    assert await probe_action_server(dead_action_url()) == ACTION_SERVER_DOWN
    assert await probe_action_server(None) == ACTION_SERVER_UNCONFIGURED
    assert await probe_action_server("not a url") == ACTION_SERVER_DOWN
    # /health answers, but not 200: it is there and it is not well.
    async with action_server() as url:
        assert await probe_action_server(url.replace("/webhook", "/nope/webhook")) == ACTION_SERVER_UNHEALTHY


async def test_probe_gives_up_after_its_timeout() -> None:
    async with action_server(health_delay=5.0) as url:
        started = time.monotonic()
        assert await probe_action_server(url, timeout=0.3) == ACTION_SERVER_DOWN
        assert time.monotonic() - started < 2.0


async def test_diagnosis_without_a_model_says_agent_not_ready() -> None:
    app = new_app()
    app.ctx.agent = Agent(action_endpoint=EndpointConfig(url=dead_action_url()))
    data = await diagnose(app, None, timeout=0.5)
    assert data == {"reason": REASON_AGENT_NOT_READY, "action_server": ACTION_SERVER_DOWN}
    bare = new_app()  # no agent at all: Rasa's own handler raises AttributeError
    data = await diagnose(bare, AttributeError("no agent"), timeout=0.5)
    assert data == {
        "reason": REASON_AGENT_NOT_READY,
        "action_server": ACTION_SERVER_UNCONFIGURED,
        "error": "AttributeError: no agent",
    }


async def test_reply_failed_goes_through_our_broker(redis_url: str, tmp_path: Path) -> None:
    broker = RedisStreamEventBroker(redis_url, spool_path=tmp_path / "spool.jsonl")
    broker.start()
    app = new_app()
    app.ctx.agent = Agent(tracker_store=InMemoryTrackerStore(Domain.empty(), event_broker=broker))
    assert find_event_broker(app) is broker
    record = record_reply_failed(
        app,
        conversation_id="cust-9",
        channel="rest",
        text="where is my invoice?",
        message_id="m-1",
        data={"reason": "no_reply", "action_server": "up"},
        metadata={"page": "/billing"},
    )
    await broker.close()
    assert record is not None
    [stored] = read_stream(redis_url)
    assert stored == record
    assert (stored.type, stored.source, stored.channel) == (REPLY_FAILED, SOURCE_CONNECTOR, "rest")
    assert stored.text == "where is my invoice?"
    assert stored.data == {"reason": "no_reply", "action_server": "up", "message_id": "m-1", "reply": APOLOGY_TEXT}
    assert stored.metadata == {"page": "/billing"}


async def test_a_record_whose_metadata_json_cannot_carry_is_still_written(redis_url: str, tmp_path: Path) -> None:
    broker = RedisStreamEventBroker(redis_url, spool_path=tmp_path / "spool.jsonl")
    broker.start()
    app = new_app()
    app.ctx.agent = Agent(tracker_store=InMemoryTrackerStore(Domain.empty(), event_broker=broker))
    deep: dict = {}
    for _ in range(5000):  # deeper than the JSON encoder recurses
        deep = {"x": deep}
    circular: list = []
    circular.append(circular)
    record_reply_failed(app, conversation_id="cust-9", channel="rest", text="hi \ud800", message_id="m-1",
                        data={"reason": "handler_error", "error": "RecursionError", "loop": circular}, metadata=deep)
    await broker.close()
    [stored] = read_stream(redis_url)
    assert stored.type == REPLY_FAILED and stored.conversation_id == "cust-9"
    assert stored.metadata["unserialisable"].startswith("RecursionError")
    assert stored.data["unserialisable"].startswith("ValueError: Circular reference")


def test_other_brokers_are_not_used() -> None:
    app = new_app()
    assert find_event_broker(app) is None
    app.ctx.agent = SimpleNamespace(tracker_store=SimpleNamespace(event_broker=object()))
    assert find_event_broker(app) is None
    assert record_reply_failed(app, conversation_id="c", channel="rest", text="t", message_id="m", data={}) is None
