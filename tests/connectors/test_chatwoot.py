"""The Chatwoot Agent Bot bridge on a real Rasa agent (tiny model), real Redis, and a fake Chatwoot over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Tuple

import aiohttp
import pytest
import redis
from rasa.core.agent import load_agent
from rasa.core.channels.channel import register
from rasa.core.utils import AvailableEndpoints
from rasa.utils.endpoints import EndpointConfig

from analytics.schema import HANDOVER_QUEUE, handover_request_key
from bot.broker import RedisStreamEventBroker
from connectors.chatwoot import ChatwootInput
from connectors.identity import IdentityResolver
from connectors.proactive import ProactiveInput
from tests.connectors.support import dead_action_url, new_app, serving
from tests.connectors.test_proactive import AGENT, TOKEN, _store, send, tracker_events
from tests.connectors.test_rest_rasa import GREETING, tiny_model  # noqa: F401 - the session fixture
from tests.fakes import chatwoot_api as cw
from tests.fakes.chatwoot_api import FakeChatwoot


@contextlib.asynccontextmanager
async def bridge(model: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Tuple[str, aiohttp.ClientSession, FakeChatwoot, ChatwootInput]]:
    endpoints = AvailableEndpoints(
        action=EndpointConfig(url=dead_action_url()),
        tracker_store=_store("FailClosedTrackerStore", redis_url),
        lock_store=_store("FailClosedLockStore", redis_url),
        event_broker=EndpointConfig(type="bot.broker.RedisStreamEventBroker", url=redis_url, spool_path=str(tmp_path / "spool.jsonl")),
    )
    resolver = IdentityResolver(redis_url)
    app = new_app()
    app.ctx.agent = await load_agent(model_path=model, endpoints=endpoints)
    chatwoot = await FakeChatwoot().start()
    channel = ChatwootInput(base_url=chatwoot.base_url, api_access_token=cw.BOT_TOKEN, webhook_token=cw.WEBHOOK_TOKEN,
                            attempts=2, backoff=0.01, resolver=resolver)
    register([channel, ProactiveInput(token=TOKEN, resolver=resolver)], app, "/webhooks/")
    try:
        async with serving(app) as base, aiohttp.ClientSession() as session:
            yield base, session, chatwoot, channel
    finally:
        await channel._work.drain(5)
        await app.ctx.agent.tracker_store.event_broker.close()
        await resolver.close()
        await chatwoot.close()


async def post(session: aiohttp.ClientSession, base: str, event: Any, token: str = cw.WEBHOOK_TOKEN) -> Tuple[int, Dict[str, Any]]:
    async with session.post(f"{base}/webhooks/chatwoot/webhook", params={"token": token}, json=event) as answer:
        return answer.status, await answer.json(content_type=None)


async def test_the_bot_answers_a_pending_conversation_and_is_silent_once_a_person_has_it(tiny_model: str, redis_url: str, tmp_path: Path) -> None:
    async with bridge(tiny_model, redis_url, tmp_path) as (base, session, chatwoot, channel):
        assert await post(session, base, cw.message_created(3, 71, "hello")) == (200, {"status": "received"})
        [reply] = await chatwoot.wait_for(3, 71, 1)
        assert (reply["content"], reply["message_type"], reply["private"]) == (GREETING, "outgoing", False)

        status, body = await post(session, base, cw.message_created(3, 71, "hello", status="open"))
        assert status == 200 and body["status"] == "ignored"
        for ignored in (cw.message_created(3, 71, "note to self", private=True), cw.message_created(3, 71, "from an agent", message_type="outgoing"),
                        {"event": "conversation_status_changed", "id": 71}, [1, 2]):
            assert (await post(session, base, ignored))[1]["status"] == "ignored"
        repeated = cw.message_created(3, 71, "hello", message_id=555)
        await post(session, base, repeated)
        await post(session, base, repeated)
        await chatwoot.wait_for(3, 71, 2)
        await channel._work.drain(5)
        await asyncio.sleep(0.3)
        assert len(chatwoot.to(3, 71)) == 2  # the first reply and one for the repeated message, nothing for the rest
    users = [e["text"] for e in tracker_events(redis_url, "chatwoot:3:71") if e["event"] == "user"]
    assert users == ["hello", "hello"]


async def test_a_queued_handover_goes_to_chatwoots_people(tiny_model: str, redis_url: str, tmp_path: Path) -> None:
    async with bridge(tiny_model, redis_url, tmp_path) as (base, session, chatwoot, channel):
        # What action_request_handover leaves when the customer asks for a person during this turn.
        from actions.clients.handover import HandoverQueue, HandoverRequest
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        await HandoverQueue(client).enqueue(HandoverRequest("chatwoot:3:72", "chatwoot", "a person please", 10.0))
        await post(session, base, cw.message_created(3, 72, "hello"))
        await chatwoot.wait_for(3, 72, 1)
        await channel._work.drain(5)
        assert chatwoot.status[(3, 72)] == "open"
        assert await client.zscore(HANDOVER_QUEUE, "chatwoot:3:72") is None and not await client.exists(handover_request_key("chatwoot:3:72"))
        await client.close()

        # A proactive message (an idea notification, say) reaches the Chatwoot conversation too, signed.
        status, body = await send(session, base, {"conversation_id": "chatwoot:3:72", "text": "Your idea shipped.", "author": AGENT})
        assert (status, body["channel"], body["status"]) == (200, "chatwoot", "delivered")
        assert chatwoot.to(3, 72)[-1]["content"] == "Dana: Your idea shipped."


@pytest.mark.parametrize("token", ["", "wrong-token-0123456789", "\udce8"])
async def test_a_webhook_without_the_token_is_refused(tiny_model: str, redis_url: str, tmp_path: Path, token: str) -> None:
    async with bridge(tiny_model, redis_url, tmp_path) as (base, session, chatwoot, _):
        async with session.post(f"{base}/webhooks/chatwoot/webhook" + (f"?token={token}" if token else ""), json=cw.message_created(3, 73, "hello")) as answer:
            assert answer.status in (400, 401)
        await asyncio.sleep(0.3)
        assert chatwoot.sent == []
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.keys("engage:tracker:*") == []
    finally:
        client.close()
