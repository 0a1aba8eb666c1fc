"""The handoff packet from a stored tracker, the FAQ records in the log and a real customer record."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient

from analytics.schema import EVENTS_STREAM, FAQ_SUGGESTED, FAQ_UNANSWERED, SOURCE_ACTION, LogEvent
from analytics.service import record_store
from console.handover import packet
from console.handover.store import HandoverStore
from console.users import UserStore
from tests.analytics.support import LEAD_CUSTOMER, qualified_lead
from tests.console.conftest import sign_in
from tests.console.handover.test_store import waiting

AT = 1_780_000_000.0


def tracker_json(customer: str) -> str:
    events = [
        {"event": "session_started", "timestamp": AT},
        {"event": "user", "timestamp": AT + 1, "text": "hi", "input_channel": "whatsapp", "parse_data": {"intent": {"name": "greet"}}},
        {"event": "bot", "timestamp": AT + 2, "text": "Hi! How can I help?"},
        {"event": "user", "timestamp": AT + 3, "text": "the audit trail export stops at 10,000 rows", "input_channel": "portal",
         "parse_data": {"intent": {"name": "ask_question"}}, "metadata": {"product": "insights", "feature": "export", "page": "/insights/d/42"}},
        {"event": "bot", "timestamp": AT + 4, "text": "I don't know that one yet.", "data": {"buttons": [{"title": "Talk to a person", "payload": "/request_human"}]}},
        {"event": "user", "timestamp": AT + 5, "text": "/request_human", "input_channel": "portal", "parse_data": {"intent": {"name": "request_human"}}},
        {"event": "pause", "timestamp": AT + 6},
        {"event": "bot", "timestamp": AT + 7, "text": "Hi, Ada here.", "metadata": {"author": {"role": "agent", "id": "ada", "name": "Ada"}}},
    ]
    return json.dumps({"sender_id": customer, "events": events})


def test_transcript_and_summary_name_what_the_customer_wants() -> None:
    lines = packet.transcript(json.loads(tracker_json("C-1"))["events"])
    assert [(line.who, line.channel) for line in lines] == [
        ("customer", "whatsapp"), ("bot", "whatsapp"), ("customer", "portal"), ("bot", "portal"), ("customer", "portal"),
        ("system", "portal"), ("agent", "portal")]
    assert lines[-1].author == "Ada" and lines[3].buttons == ["Talk to a person"]
    wants, points, topics = packet.summarise(lines, reason="a person please")  # the reason itself says nothing
    assert wants == "the audit trail export stops at 10,000 rows"
    assert topics == ["ask_question"] and points == []
    assert packet.summarise(lines, reason="refund for invoice INV-42")[0] == "refund for invoice INV-42"
    assert packet.summarise([], reason="")[0] == "(the customer has not said yet)"


async def test_packet_gathers_record_context_and_what_the_bot_tried(client: Any) -> None:
    customer = LEAD_CUSTOMER
    await client.set(packet.TRACKER_PREFIX + customer, tracker_json(customer))
    store = record_store(client)
    for n, event in enumerate(qualified_lead(AT)):
        await store.apply(f"{n + 1}-0", event)
    for event in (
        LogEvent(FAQ_SUGGESTED, customer, SOURCE_ACTION, "portal", AT + 3.5, data={"query": "audit trail export", "faq_id": "insights-export",
                                                                                   "score": 0.61, "suggestions": [{"faq_id": "insights-export", "score": 0.61}]}),
        LogEvent(FAQ_UNANSWERED, customer, SOURCE_ACTION, "portal", AT + 4.5, data={"query": "10,000 rows", "faq_id": None, "score": 0.2, "reason": "low_score"}),
        LogEvent(FAQ_UNANSWERED, "C-someoneelse00000", SOURCE_ACTION, "portal", AT, data={"query": "not theirs"}),
    ):
        await client.xadd(EVENTS_STREAM, event.to_fields())
    found = await packet.build(client, store, customer, "a person please")
    assert found.context == {"product": "insights", "feature": "export", "page": "/insights/d/42"}
    assert found.channels == ["portal", "whatsapp"]
    assert [(t["outcome"], t["query"], t["score"]) for t in found.faq_tried] == [("suggested", "audit trail export", 0.61), ("unanswered", "10,000 rows", 0.2)]
    assert found.faq_tried[0]["offered"] == [{"faq_id": "insights-export", "score": 0.61, "title": None}]
    assert found.record is not None and found.record["funnel"]["stage"] in ("lead", "opportunity")
    assert found.record_problem == ""


async def test_the_conversation_page_shows_the_packet(web: TestClient, client: Any) -> None:
    customer = LEAD_CUSTOMER
    await client.set(packet.TRACKER_PREFIX + customer, tracker_json(customer))
    store = record_store(client)
    for n, event in enumerate(qualified_lead(AT)):
        await store.apply(f"{n + 1}-0", event)
    await waiting(client, customer, AT + 5, channel="portal")
    await HandoverStore(client).claim(await UserStore(client).get("ada"), customer, "support", 3)
    assert await sign_in(web, "ada") == 303
    async with web.get(f"/conversations/{customer}") as response:
        page = await response.text()
    assert response.status == 200
    assert "the audit trail export stops at 10,000 rows" in page and "product: insights" in page
    assert "fit " in page and "/100" in page and 'id="reply-form"' in page
