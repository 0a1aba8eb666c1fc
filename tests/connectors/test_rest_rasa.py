"""EngageRestInput in front of a real Rasa agent (tiny model trained here), Redis tracker store and our broker.

Shows what Rasa does on its own (swallows action-server failures) and what the
connector adds (an apology and a reply_failed record with the reason).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Iterator, Optional, Tuple
from urllib.parse import urlsplit

import aiohttp
import pytest
import redis
from rasa.core.agent import load_agent
from rasa.core.channels.channel import register
from rasa.core.utils import AvailableEndpoints
from rasa.utils.endpoints import EndpointConfig

from actions.constants import ACTION_ANSWER_FAQ, ASK_QUESTION, GREET
from analytics.schema import REPLY_FAILED, SOURCE_CONNECTOR
from bot.broker import RedisStreamEventBroker
from connectors.replies import (
    APOLOGY_TEXT,
    REASON_ACTION_SERVER_UNREACHABLE,
    REASON_HANDLER_ERROR,
    REASON_NO_REPLY,
)
from connectors.rest import EngageRestInput
from tests.conftest import free_port
from tests.connectors.support import action_server, dead_action_url, new_app, post, read_stream, serving

WEBHOOK = "/webhooks/rest/webhook"
GREETING = "Hi there, I'm the Quillstack assistant."

DOMAIN = f"""
version: "3.1"
intents: [{GREET}, {ASK_QUESTION}]
responses:
  utter_greet:
  - text: "{GREETING}"
actions: [{ACTION_ANSWER_FAQ}]
session_config:
  session_expiration_time: 60
  carry_over_slots_to_new_session: true
"""
CONFIG = """
recipe: default.v1
assistant_id: engage-connector-test
language: en
pipeline:
  - name: WhitespaceTokenizer
  - name: KeywordIntentClassifier
policies:
  - name: RulePolicy
"""
DATA = f"""
version: "3.1"
nlu:
- intent: {GREET}
  examples: |
    - hello
    - hi
- intent: {ASK_QUESTION}
  examples: |
    - question
rules:
- rule: greet
  steps:
  - intent: {GREET}
  - action: utter_greet
- rule: answer
  steps:
  - intent: {ASK_QUESTION}
  - action: {ACTION_ANSWER_FAQ}
"""


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A model with a greeting rule and a custom-action rule (KeywordIntentClassifier: trains in seconds)."""
    from rasa.model_training import train

    root = tmp_path_factory.mktemp("tiny-bot")
    for name, text in (("domain.yml", DOMAIN), ("config.yml", CONFIG), ("data.yml", DATA)):
        (root / name).write_text(text)
    previous = os.environ.get("RASA_CACHE_DIRECTORY")
    os.environ["RASA_CACHE_DIRECTORY"] = str(root / "cache")  # not ./.rasa in the repo
    try:
        result = train(
            str(root / "domain.yml"),
            str(root / "config.yml"),
            [str(root / "data.yml")],
            output=str(root / "models"),
            fixed_model_name="tiny",
        )
    finally:
        if previous is None:
            os.environ.pop("RASA_CACHE_DIRECTORY", None)
        else:
            os.environ["RASA_CACHE_DIRECTORY"] = previous
    assert result.code == 0 and result.model
    yield result.model


def redis_store(url: str) -> EndpointConfig:
    parts = urlsplit(url)
    return EndpointConfig(type="redis", url=parts.hostname, port=parts.port, db=0)


@contextlib.asynccontextmanager
async def rasa_server(
    model: str, redis_url: str, action_url: str, tmp_path: Path, lock_store_url: Optional[str] = None
) -> AsyncIterator[Tuple[str, aiohttp.ClientSession, RedisStreamEventBroker]]:
    """Wired as `rasa run` wires it: load_agent with endpoints, then channel.register."""
    endpoints = AvailableEndpoints(
        action=EndpointConfig(url=action_url),
        tracker_store=redis_store(redis_url),
        lock_store=redis_store(lock_store_url) if lock_store_url else None,
        event_broker=EndpointConfig(
            type="bot.broker.RedisStreamEventBroker", url=redis_url, spool_path=str(tmp_path / "spool.jsonl")
        ),
    )
    app = new_app()
    app.ctx.agent = await load_agent(model_path=model, endpoints=endpoints)
    broker = app.ctx.agent.tracker_store.event_broker
    assert isinstance(broker, RedisStreamEventBroker)
    register([EngageRestInput(health_timeout=0.5)], app, "/webhooks/")
    try:
        async with serving(app) as base, aiohttp.ClientSession() as session:
            yield base, session, broker
    finally:
        await broker.close()  # what rasa.core.run.close_resources does at shutdown


def tracker_keys(url: str) -> list:
    client = redis.Redis.from_url(url)
    try:
        return sorted(key.decode() for key in client.keys("tracker:*"))
    finally:
        client.close()


async def test_a_conversation_turn_lands_in_the_stream_with_its_channel(
    tiny_model: str, redis_url: str, tmp_path: Path
) -> None:
    async with rasa_server(tiny_model, redis_url, dead_action_url(), tmp_path) as (base, session, broker):
        payload = {"sender": "e2e-1", "message": "hello", "metadata": {"product": "docs"}}
        status, replies = await post(session, base + WEBHOOK, payload)
        assert await broker.flush()
    assert (status, replies) == (200, [{"recipient_id": "e2e-1", "text": GREETING}])
    records = read_stream(redis_url)
    types = [r.type for r in records]
    # A new conversation: Rasa's session-start events (slot session_started_metadata,
    # action_session_start, session_started, action_listen) come before the user event.
    assert types.index("session_started") < types.index("user")
    assert "bot" in types
    assert {r.channel for r in records} == {"rest"}
    assert {r.conversation_id for r in records} == {"e2e-1"}
    [user] = [r for r in records if r.type == "user"]
    assert (user.text, user.intent, user.metadata["product"]) == ("hello", GREET, "docs")  # Rasa adds model_id
    assert user.confidence is not None and user.confidence > 0.5
    [bot] = [r for r in records if r.type == "bot"]
    assert bot.text == GREETING
    assert tracker_keys(redis_url) == ["tracker:e2e-1"]


async def test_rejected_requests_leave_no_trace_in_rasa(tiny_model: str, redis_url: str, tmp_path: Path) -> None:
    async with rasa_server(tiny_model, redis_url, dead_action_url(), tmp_path) as (base, session, broker):
        bad = ({"sender": "e2e-2", "message": ""}, {"sender": "e2e-2", "message": "x" * 5000}, {"sender": "e2e 2"})
        for body in bad:
            assert (await post(session, base + WEBHOOK, body))[0] in (400, 413)
        assert await broker.flush()
        assert tracker_keys(redis_url) == [] and read_stream(redis_url) == []
        status, replies = await post(session, base + WEBHOOK, {"sender": "e2e-2", "message": "hi"})
    assert (status, replies[0]["text"]) == (200, GREETING)


async def test_action_server_down_gets_an_apology_not_silence(tiny_model: str, redis_url: str, tmp_path: Path) -> None:
    async with rasa_server(tiny_model, redis_url, dead_action_url(), tmp_path) as (base, session, broker):
        status, replies = await post(session, base + WEBHOOK, {"sender": "e2e-3", "message": f"/{ASK_QUESTION}"})
        assert await broker.flush()
    assert (status, replies) == (200, [{"recipient_id": "e2e-3", "text": APOLOGY_TEXT}])
    records = read_stream(redis_url)
    # Rasa logs the failed action as executed (its events are dropped) and says nothing.
    assert any(r.type == "action" and r.data.get("name") == ACTION_ANSWER_FAQ for r in records)
    assert not any(r.type == "bot" for r in records)
    [failed] = [r for r in records if r.type == REPLY_FAILED]
    assert (failed.source, failed.channel, failed.conversation_id) == (SOURCE_CONNECTOR, "rest", "e2e-3")
    assert failed.data["reason"] == REASON_ACTION_SERVER_UNREACHABLE
    assert failed.data["action_server"] == "down"
    [user] = [r for r in records if r.type == "user"]
    assert failed.timestamp >= user.timestamp


async def test_failing_action_on_a_healthy_server_is_no_reply(tiny_model: str, redis_url: str, tmp_path: Path) -> None:
    async with action_server(webhook={"error": "boom"}, webhook_status=500) as action_url:
        async with rasa_server(tiny_model, redis_url, action_url, tmp_path) as (base, session, broker):
            _, replies = await post(session, base + WEBHOOK, {"sender": "e2e-4", "message": f"/{ASK_QUESTION}"})
            assert await broker.flush()
    assert [r["text"] for r in replies] == [APOLOGY_TEXT]
    [failed] = [r for r in read_stream(redis_url) if r.type == REPLY_FAILED]
    assert (failed.data["reason"], failed.data["action_server"]) == (REASON_NO_REPLY, "up")


async def test_a_working_action_answers_and_nothing_is_flagged(tiny_model: str, redis_url: str, tmp_path: Path) -> None:
    answer: Dict[str, Any] = {"events": [], "responses": [{"text": "Invite people from Settings > Members."}]}
    async with action_server(webhook=answer) as action_url:
        async with rasa_server(tiny_model, redis_url, action_url, tmp_path) as (base, session, broker):
            _, replies = await post(session, base + WEBHOOK, {"sender": "e2e-5", "message": f"/{ASK_QUESTION}"})
            assert await broker.flush()
    assert [r["text"] for r in replies] == ["Invite people from Settings > Members."]
    records = read_stream(redis_url)
    assert not any(r.type == REPLY_FAILED for r in records)
    assert [r.text for r in records if r.type == "bot"] == ["Invite people from Settings > Members."]


async def test_lock_store_down_is_a_handler_error(tiny_model: str, redis_url: str, tmp_path: Path) -> None:
    # (A Redis *tracker* store outage would not do: Rasa wraps it in FailSafeTrackerStore,
    # which falls back to an in-memory store and answers anyway.)
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    async with rasa_server(tiny_model, redis_url, dead_action_url(), tmp_path, lock_store_url=dead_redis) as (
        base,
        session,
        broker,
    ):
        status, replies = await post(session, base + WEBHOOK, {"sender": "e2e-6", "message": "hello"})
        assert await broker.flush()
    assert (status, [r["text"] for r in replies]) == (200, [APOLOGY_TEXT])
    [failed] = read_stream(redis_url)
    assert failed.type == REPLY_FAILED and failed.data["reason"] == REASON_HANDLER_ERROR
    assert failed.data["error"].startswith("LockError") and "Connection refused" in failed.data["error"]
