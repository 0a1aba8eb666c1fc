"""Proactive delivery (connectors.proactive) on a real Rasa agent (tiny model), real Redis stores,
a real socket.io client for the web chat, and the fake WhatsApp Graph API for a refusal."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Tuple
from urllib.parse import urlsplit

import aiohttp
import pytest
import redis
from rasa.core.agent import load_agent
from rasa.core.channels.channel import register
from rasa.core.utils import AvailableEndpoints
from rasa.utils.endpoints import EndpointConfig

from analytics.customers import Identity
from analytics.schema import REPLY_UNDELIVERED
from bot.broker import RedisStreamEventBroker
from connectors.identity import IdentityResolver
from connectors.portal import PortalInput
from connectors.proactive import ProactiveInput
from connectors.rest import EngageRestInput
from connectors.webchat import WebChatInput
from connectors.whatsapp import WhatsAppInput
from tests.connectors.support import dead_action_url, new_app, read_stream, serving
from tests.connectors.test_portal import AUDIENCE, ISSUER, token
from tests.connectors.test_portal import SECRET as PORTAL_SECRET
from tests.connectors.test_rest_rasa import GREETING, tiny_model  # noqa: F401 - the session fixture
from tests.connectors.test_webchat import Widget
from tests.fakes import whatsapp_graph as wa
from tests.fakes.whatsapp_graph import FakeGraph

TOKEN = "t" * 40
AGENT = {"role": "agent", "id": "dana", "name": "Dana"}


def _store(kind: str, url: str) -> EndpointConfig:
    parts = urlsplit(url)
    return EndpointConfig(type=f"bot.stores.{kind}", url=parts.hostname, port=parts.port, db=0, key_prefix="engage")


@contextlib.asynccontextmanager
async def stack(model: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Tuple[str, aiohttp.ClientSession, Any, FakeGraph]]:
    """Rasa wired as `rasa run` wires it, with the web chat, WhatsApp (fake Graph API), REST and proactive channels."""
    endpoints = AvailableEndpoints(
        action=EndpointConfig(url=dead_action_url()),
        tracker_store=_store("FailClosedTrackerStore", redis_url),
        lock_store=_store("FailClosedLockStore", redis_url),
        event_broker=EndpointConfig(type="bot.broker.RedisStreamEventBroker", url=redis_url, spool_path=str(tmp_path / "spool.jsonl")),
    )
    resolver = IdentityResolver(redis_url)
    app = new_app()
    app.ctx.agent = await load_agent(model_path=model, endpoints=endpoints)
    broker = app.ctx.agent.tracker_store.event_broker
    assert isinstance(broker, RedisStreamEventBroker)
    async with FakeGraph() as graph:
        whatsapp = WhatsAppInput(
            access_token=wa.ACCESS_TOKEN, app_secret=wa.APP_SECRET, verify_token=wa.VERIFY_TOKEN,
            phone_number_id=wa.PHONE_NUMBER_ID, api_base_url=graph.base_url, attempts=2, timeout=5.0, backoff=0.01, resolver=resolver,
        )
        portal = PortalInput(key=PORTAL_SECRET, algorithm="HS256", audience=AUDIENCE, issuer=ISSUER, resolver=resolver)
        channels = [EngageRestInput(health_timeout=0.5), WebChatInput(resolver=resolver), whatsapp, portal, ProactiveInput(token=TOKEN, resolver=resolver)]
        register(channels, app, "/webhooks/")
        try:
            async with serving(app) as base, aiohttp.ClientSession() as session:
                yield base, session, resolver, graph
        finally:
            for widget in Widget.opened:
                with contextlib.suppress(Exception):
                    await widget.client.disconnect()
            Widget.opened.clear()
            await whatsapp.drain(timeout=5)
            await broker.close()
            await resolver.close()


async def send(session: aiohttp.ClientSession, base: str, body: Dict[str, Any], token: str = TOKEN) -> Tuple[int, Dict[str, Any]]:
    async with session.post(f"{base}/webhooks/proactive/send", json=body, headers={"Authorization": f"Bearer {token}"}) as answer:
        return answer.status, await answer.json(content_type=None)


def tracker_events(redis_url: str, conversation_id: str) -> List[Dict[str, Any]]:
    import json

    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.get(f"engage:tracker:{conversation_id}")
    finally:
        client.close()
    return json.loads(raw)["events"] if raw else []


async def no_reply(widget: Widget, wait: float = 1.5) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await widget.reply(timeout=wait)


async def web_customer(base: str, resolver: IdentityResolver) -> Tuple[Widget, str, str]:
    widget = Widget(base)
    session_id = await widget.open(uuid.uuid4().hex)
    await widget.say("hello", session_id)
    assert (await widget.reply())["text"] == GREETING
    customer = await resolver.customer_for([Identity.of("web", session_id)])
    return widget, session_id, customer


async def test_an_agent_pauses_the_bot_replies_on_the_web_chat_and_hands_back(tiny_model: str, redis_url: str, tmp_path: Path) -> None:
    async with stack(tiny_model, redis_url, tmp_path) as (base, session, resolver, _):
        widget, session_id, customer = await web_customer(base, resolver)

        status, body = await send(session, base, {"conversation_id": customer, "text": "Hi, Dana here <b>from support</b>.",
                                                   "author": AGENT, "control": "pause", "message_id": "m-1"})
        assert (status, body["status"], body["channel"], body["paused"]) == (200, "delivered", "socketio", True)
        assert await widget.reply() == {"text": "Hi, Dana here <b>from support</b>.", "author": "Dana"}

        # While paused the bot says nothing (no apology either), and the customer's words are still logged.
        await widget.say("hello", session_id)
        await no_reply(widget)

        status, body = await send(session, base, {"conversation_id": customer, "text": "You're back with the assistant.",
                                                   "author": AGENT, "control": "resume"})
        assert (status, body["paused"]) == (200, False)
        assert (await widget.reply())["text"] == "You're back with the assistant."
        await widget.say("hello", session_id)
        assert (await widget.reply())["text"] == GREETING

    events = tracker_events(redis_url, customer)
    kinds = [(e["event"], e.get("text")) for e in events if e["event"] in ("pause", "resume", "bot", "user")]
    assert kinds == [
        ("user", "hello"), ("bot", GREETING),
        ("pause", None), ("bot", "Hi, Dana here <b>from support</b>."),
        ("user", "hello"),
        ("resume", None), ("bot", "You're back with the assistant."),
        ("user", "hello"), ("bot", GREETING),
    ]
    log = [r for r in read_stream(redis_url) if r.conversation_id == customer]
    [from_dana] = [r for r in log if r.type == "bot" and r.text.startswith("Hi, Dana")]
    assert from_dana.metadata["author"] == AGENT and from_dana.metadata["delivery"] == "delivered"
    assert [r.type for r in log].count("pause") == 1 and not any(r.type == "reply_failed" for r in log)


async def test_a_closed_web_chat_gets_the_message_on_its_next_connect(tiny_model: str, redis_url: str, tmp_path: Path) -> None:
    async with stack(tiny_model, redis_url, tmp_path) as (base, session, resolver, _):
        widget, session_id, customer = await web_customer(base, resolver)
        await widget.client.disconnect()
        await asyncio.sleep(0.3)
        status, body = await send(session, base, {"conversation_id": customer, "text": "We fixed your export.", "author": AGENT})
        assert (status, body["status"]) == (200, "queued")
        again = Widget(base)
        assert await again.open(session_id) == session_id
        assert await again.reply() == {"text": "We fixed your export.", "author": "Dana"}
        third = Widget(base)  # handed over once, not on every connect
        await third.open(session_id)
        await no_reply(third, 1.0)


async def test_a_repeated_message_id_is_sent_once(tiny_model: str, redis_url: str, tmp_path: Path) -> None:
    async with stack(tiny_model, redis_url, tmp_path) as (base, session, resolver, _):
        widget, _, customer = await web_customer(base, resolver)
        body = {"conversation_id": customer, "text": "Only once.", "author": AGENT, "message_id": "same-1"}
        first = await send(session, base, body)
        second = await send(session, base, body)
        assert first[0] == second[0] == 200 and second[1] == {**first[1], "repeat": True}
        assert (await widget.reply())["text"] == "Only once."
        await no_reply(widget, 1.0)
    assert [e.get("text") for e in tracker_events(redis_url, customer) if e["event"] == "bot"].count("Only once.") == 1


async def test_a_refusal_is_reported_with_its_reason_and_nothing_is_half_written(tiny_model: str, redis_url: str, tmp_path: Path) -> None:
    async with stack(tiny_model, redis_url, tmp_path) as (base, session, resolver, graph):
        # A WhatsApp customer: the number comes from a signed webhook, as Meta sends it.
        raw, headers = wa.signed(wa.text_message("4915123456789", "hello"))
        async with session.post(f"{base}/webhooks/whatsapp/webhook", data=raw, headers=headers) as answer:
            assert answer.status == 200
        await graph.wait_for(1)
        customer = await resolver.customer_for([Identity.of("whatsapp", "4915123456789")])
        before = tracker_events(redis_url, customer)

        graph.fail_next(2, status=500)  # both attempts fail
        status, body = await send(session, base, {"conversation_id": customer, "text": "Are you still there?", "author": AGENT})
        assert (status, body["status"], body["channel"]) == (502, "failed", "whatsapp")
        assert "500" in body["reason"]
        assert tracker_events(redis_url, customer) == before

        status, body = await send(session, base, {"conversation_id": customer, "text": "Second try.", "author": AGENT})
        assert (status, body["status"]) == (200, "delivered")
        assert graph.sent[-1]["text"]["body"] == "Second try."

        # The REST channel cannot push: said so, plainly.
        async with session.post(f"{base}/webhooks/rest/webhook", json={"sender": "rest-1", "message": "hello"}) as answer:
            assert answer.status == 200
        status, body = await send(session, base, {"conversation_id": "rest-1", "text": "Hello?", "author": AGENT})
        assert status == 502 and "REST channel" in body["reason"]
        await asyncio.sleep(0.5)  # the broker's writer
    undelivered = [r for r in read_stream(redis_url) if r.type == REPLY_UNDELIVERED]
    assert [(r.conversation_id, r.text, r.metadata["author"]["name"]) for r in undelivered] == [
        (customer, "Are you still there?", "Dana"), ("rest-1", "Hello?", "Dana")]


@pytest.mark.parametrize(
    "body, token, status, code",
    [
        ({"conversation_id": "x", "text": "hi", "author": AGENT}, "wrong" * 8, 401, "invalid_token"),
        ({"conversation_id": "x", "text": "", "author": AGENT}, TOKEN, 400, "empty_text"),
        ({"conversation_id": "x", "text": "a" * 5000, "author": AGENT}, TOKEN, 400, "text_too_long"),
        ({"conversation_id": "x", "text": "hi", "author": {"role": "admin", "id": "a", "name": "b"}}, TOKEN, 400, "invalid_author"),
        ({"conversation_id": "x", "text": "hi", "author": AGENT, "control": "stop"}, TOKEN, 400, "invalid_control"),
        ({"conversation_id": "x", "text": "hi", "author": AGENT, "control": []}, TOKEN, 400, "invalid_control"),  # found by the fuzz suite (500)
        ({"conversation_id": "x", "text": "hi", "author": {"role": ["agent"], "id": "a", "name": "b"}}, TOKEN, 400, "invalid_author"),
        ({"conversation_id": "x", "text": "hi", "author": AGENT, "extra": 1}, TOKEN, 400, "unknown_fields"),
        ({"conversation_id": "nobody-here", "text": "hi", "author": AGENT}, TOKEN, 404, None),
    ],
)
async def test_bad_requests_are_refused_and_leave_nothing(tiny_model: str, redis_url: str, tmp_path: Path, body: Dict[str, Any], token: str, status: int, code: Any) -> None:
    async with stack(tiny_model, redis_url, tmp_path) as (base, session, _, _graph):
        answer = await send(session, base, body, token=token)
        await asyncio.sleep(0.2)
    assert answer[0] == status
    if code is not None:
        assert answer[1]["error"] == code and answer[1]["message"]
    else:
        assert "no conversation" in answer[1]["reason"]
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.keys("engage:tracker:*") == [] and client.xlen("engage:events") == 0
    finally:
        client.close()


async def test_the_pause_survives_a_restart_of_the_rasa_server(tiny_model: str, redis_url: str, tmp_path: Path) -> None:
    async with stack(tiny_model, redis_url, tmp_path) as (base, session, resolver, _):
        widget, session_id, customer = await web_customer(base, resolver)
        status, _ = await send(session, base, {"conversation_id": customer, "text": "Dana here.", "author": AGENT, "control": "pause"})
        assert status == 200
    # Another Rasa server (a restart, or a second process behind a load balancer) on the same Redis.
    async with stack(tiny_model, redis_url, tmp_path / "second") as (base, session, resolver, _):
        widget = Widget(base)
        await widget.open(session_id)
        await widget.say("hello", session_id)
        await no_reply(widget)
        status, body = await send(session, base, {"conversation_id": customer, "text": "Back to the bot.", "author": AGENT, "control": "resume"})
        assert (status, body["paused"]) == (200, False)
        assert (await widget.reply())["text"] == "Back to the bot."
        await widget.say("hello", session_id)
        assert (await widget.reply())["text"] == GREETING


async def test_the_portal_gets_what_came_while_it_was_not_asking(tiny_model: str, redis_url: str, tmp_path: Path) -> None:
    async with stack(tiny_model, redis_url, tmp_path) as (base, session, resolver, _):
        headers = {"Authorization": f"Bearer {token()}"}
        async with session.post(f"{base}/webhooks/portal/webhook", json={"message": "hello"}, headers=headers) as answer:
            assert [r["text"] for r in await answer.json()] == [GREETING]
        customer = await resolver.customer_for([Identity.of("portal", "acme:u-17")])
        status, body = await send(session, base, {"conversation_id": customer, "text": "Your export is fixed.", "author": AGENT})
        assert (status, body["status"], body["channel"]) == (200, "queued", "portal")
        async with session.get(f"{base}/webhooks/portal/messages", headers=headers) as answer:
            assert [(m["text"], m["author"]) for m in await answer.json()] == [("Your export is fixed.", "Dana")]
        async with session.get(f"{base}/webhooks/portal/messages", headers=headers) as answer:
            assert await answer.json() == []
        async with session.get(f"{base}/webhooks/portal/messages", headers={"Authorization": "Bearer nope"}) as answer:
            assert answer.status == 401
        await send(session, base, {"conversation_id": customer, "text": "One more thing.", "author": AGENT})
        async with session.post(f"{base}/webhooks/portal/webhook", json={"message": "hello"}, headers=headers) as answer:
            assert [r["text"] for r in await answer.json()] == ["One more thing.", GREETING]  # waiting first, then the replies


async def test_a_new_session_of_an_owned_conversation_stays_paused(tiny_model: str, redis_url: str, tmp_path: Path) -> None:
    import json

    async with stack(tiny_model, redis_url, tmp_path) as (base, session, resolver, _):
        widget, session_id, customer = await web_customer(base, resolver)
        assert (await send(session, base, {"conversation_id": customer, "text": "Dana here.", "author": AGENT, "control": "pause"}))[0] == 200
        assert (await widget.reply())["text"] == "Dana here."
        client = redis.Redis.from_url(redis_url)
        try:
            client.hset(f"engage:handover:request:{customer}", mapping={"owner": "dana", "team": "support"})
            # The customer's last message was two hours ago: the next one starts a new session.
            key = f"engage:tracker:{customer}"
            stored = json.loads(client.get(key))
            for event in stored["events"]:
                event["timestamp"] -= 7200
            client.set(key, json.dumps(stored))
        finally:
            client.close()
        await widget.say("hello again", session_id)
        await no_reply(widget)
    events = tracker_events(redis_url, customer)
    kinds = [e["event"] for e in events]
    assert kinds.count("session_started") == 2
    after = kinds[len(kinds) - 1 - kinds[::-1].index("session_started"):]
    assert "pause" in after and after.index("pause") < after.index("user") and "bot" not in after[after.index("user"):]
