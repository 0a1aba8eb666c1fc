"""A customer's rights in the chat: what is held about them, and an erasure queued after they confirm."""

from __future__ import annotations


import redis.asyncio
from rasa_sdk.executor import CollectingDispatcher

from actions.privacy import CONFIRM, ERASING, NOT_HERE, NOTHING_YET, ActionConfirmErasure, ActionDescribeMyData, ActionEraseMyData
from analytics.customers import CustomerDirectory, Identity
from analytics.privacy import ERASURES
from analytics.records.store import RecordStore
from analytics.schema import PRIVACY_REQUESTED
from tests.actions.conftest import EventLog, make_tracker
from tests.analytics.support import LEAD_CUSTOMER, qualified_lead


async def test_a_customer_sees_what_is_held_in_their_own_words(client: redis.asyncio.Redis, event_log: EventLog) -> None:
    events = qualified_lead()
    await RecordStore(client).apply_batch([(f"{100 + n}-0", e) for n, e in enumerate(events)])
    await client.hset(f"engage:customer:{LEAD_CUSTOMER}:identities", "whatsapp:4915123456789", '{"evidence": "whatsapp_number", "linked_at": 1}')
    dispatcher = CollectingDispatcher()
    await ActionDescribeMyData(client=client, writer=event_log.writer).run(dispatcher, make_tracker("what do you know about me", "request_my_data", sender_id=LEAD_CUSTOMER), {})
    text = dispatcher.messages[0]["text"]
    assert "whatsapp:4915123456789" in text and "1 messages from you" in text and "budget “around 40k”" in text
    assert [r.data for r in await event_log.records(PRIVACY_REQUESTED)] == [{"kind": "access"}]
    fresh = CollectingDispatcher()
    await ActionDescribeMyData(client=client).run(fresh, make_tracker("what do you know about me", "request_my_data", sender_id="C-00000000000000f0"), {})
    assert fresh.messages[0]["text"] == NOTHING_YET


async def test_an_erasure_is_confirmed_then_queued_for_verified_customers_only(client: redis.asyncio.Redis, event_log: EventLog) -> None:
    customer = (await CustomerDirectory(client).resolve([(Identity.of("web", "session-erase001"), "web_session")])).customer_id
    asked = CollectingDispatcher()
    await ActionConfirmErasure(client=client).run(asked, make_tracker("delete my data", "request_erasure", sender_id=customer), {})
    assert asked.messages[0]["text"] == CONFIRM and len(asked.messages[0]["buttons"]) == 2
    done = CollectingDispatcher()
    await ActionEraseMyData(client=client, writer=event_log.writer).run(done, make_tracker("yes", "affirm", sender_id=customer), {})
    assert done.messages[0]["text"] == ERASING and await client.zscore(ERASURES, customer) is not None
    stranger = CollectingDispatcher()
    await ActionEraseMyData(client=client).run(stranger, make_tracker("yes", "affirm", sender_id="rest-tester"), {})
    assert stranger.messages[0]["text"] == NOT_HERE and await client.zcard(ERASURES) == 1
