"""Engagement and the lead funnel on the running stack: a customer asks, gives feedback and an idea in
the portal, links WhatsApp with an e-mail code and fills the sales form there; the analytics service
folds it all into one record (stage history with reasons, explained scores) and HubSpot receives the lead."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any, Dict, Optional

import redis
import requests

from analytics.records.store import RecordStore
from analytics.redis_connect import connect
from scripts.stack import Stack
from tests.e2e.conftest import Providers, eventually, texts
from tests.e2e.test_messaging import WhatsApp, body_of
from tests.e2e.test_one_customer import code_sent_to, portal_token
from tests.fakes import whatsapp_graph as wa

SALES_FORM = [
    "can I get a demo?",
    "Dana Whitfield",
    None,  # the e-mail, filled in below
    "Northbeam Logistics",
    "Head of Operations",
    "a knowledge base for 300 field staff",
    "within 3 months",
    "10k-50k",  # spans two budget buckets: the assistant asks which is closer
    "$25k–$100k / year",
]


def record_of(stack: Stack, customer: str) -> Optional[Dict[str, Any]]:
    async def read() -> Optional[Dict[str, Any]]:
        client = connect(stack.effective_redis_url, 5.0, decode_responses=True)
        try:
            return await RecordStore(client).record(customer)
        finally:
            await client.aclose()

    return asyncio.run(read())


def test_a_customer_across_portal_and_whatsapp_becomes_a_lead_with_reasons_and_reaches_hubspot(
    stack: Stack, providers: Providers, store: redis.Redis
) -> None:
    email = f"dana.{uuid.uuid4().hex[:8]}@northbeam.example"
    context = {"product": "insights", "feature": "dashboards", "page": "/insights/d/7", "app_version": "5.2.0"}
    token = portal_token(email, f"u-{uuid.uuid4().hex[:8]}")

    def portal(text: str) -> str:
        answer = requests.post(f"{stack.rasa_url}/webhooks/portal/webhook", json={"message": text, "context": context},
                               headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert answer.status_code == 200, answer.text
        return texts(answer.json())

    said = [portal(text) for text in (
        "how do I connect Slack?",
        "the new Insights charts are great, especially the CSV export we use in our weekly reviews",
        "I have an idea",
        "let us export Insights dashboards straight to PowerPoint slides",
        "our managers rebuild every slide by hand each week",
    )]
    assert "Slack" in said[0] and re.search(r"IDEA-[0-9A-F]{6}", said[-1]), said
    portal_customer = store.get(f"engage:identity:email:{email}")
    assert portal_customer

    phone = WhatsApp(stack, providers, store)
    phone.send(wa.text_message(phone.number, "I already have an account, please link this chat to it"))
    phone.send(wa.text_message(phone.number, email))
    confirmed = phone.send(wa.text_message(phone.number, code_sent_to(stack, email)))
    assert any(f"{email} is confirmed" in body_of(m) for m in confirmed), confirmed
    customer = phone.customer
    assert store.get(f"engage:identity:email:{email}") == customer  # the portal customer merged into this one
    replies = [phone.send(wa.text_message(phone.number, answer or email)) for answer in SALES_FORM]
    assert "covers more than one of our ranges" in body_of(replies[-2][0]), replies[-2]

    def folded() -> Optional[Dict[str, Any]]:
        lag = requests.get(f"{stack.analytics_url}/health", timeout=10).json()["lag"]
        record = record_of(stack, customer)
        ready = record and lag["entries"] == 0 and record["funnel"]["stage"] in ("lead", "opportunity")
        return record if ready else None

    record = eventually(folded, "the analytics service to make the customer a lead", timeout=60)
    assert {"portal", "whatsapp"} <= set(record["channels"])
    assert f"email:{email}" in record["identities"]
    counts = record["counts"]
    assert counts["faq_answered"] >= 1 and counts["feedback"] == 1 and counts["ideas"] == 1
    assert record["lead"]["lead_budget"]["value"] == "$25k–$100k / year"
    assert record["lead"]["lead_timeline"]["value"] == "Within 3 months" and record["lead"]["lead_timeline"]["said"] == "within 3 months"
    assert record["lead"]["lead_budget"]["said"] == "10k-50k"

    stages = [(h["stage"], h["reason"]) for h in record["funnel"]["history"]]
    assert [s for s, _ in stages][:4] == ["visitor", "suspect", "prospect", "lead"], stages
    assert "portal" in stages[1][1] and "request_demo" in stages[2][1], stages
    assert all(h["event_id"] for h in record["funnel"]["history"])
    assert record["funnel"]["fit"]["parts"] == {"role": 30.0, "budget": 25.0, "timeline": 20.0, "company": 15.0}

    innovation = record["engagement"]["dimensions"]["innovation"]["by_rule"]
    communication = record["engagement"]["dimensions"]["communication"]["by_rule"]
    assert innovation["idea_contributed"]["count"] == 1 and "idea_in_use" in innovation
    assert communication["feedback_given"]["count"] == 1 and "feedback_in_use" in communication

    contact = eventually(lambda: providers.hubspot.contacts.get(email), "HubSpot to receive the lead", timeout=30)
    props = contact["properties"]
    assert props["engage_customer_id"] == customer and props["company"] == "Northbeam Logistics"
    assert props["lifecyclestage"] in ("salesqualifiedlead", "opportunity") and props["jobtitle"] == "Head of Operations"


def test_a_portal_customer_is_asked_once_to_recommend_us_and_refers_a_colleague(stack: Stack, store: redis.Redis) -> None:
    email = f"sam.{uuid.uuid4().hex[:8]}@northbeam.example"
    token = portal_token(email, f"u-{uuid.uuid4().hex[:8]}")

    def portal(text: str) -> Any:
        answer = requests.post(f"{stack.rasa_url}/webhooks/portal/webhook", json={"message": text},
                               headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert "Slack" in texts(portal("how do I connect Slack?"))
    (asked,) = portal("thanks, that helped")
    assert "how likely are you to recommend Quillstack" in asked["text"] and len(asked["buttons"]) == 11
    offer = portal(asked["buttons"][10]["payload"])  # "10"
    assert "invite a colleague" in texts(offer)
    assert "e-mail" in texts(portal("/refer_colleague"))
    assert "sam.colleague@othercorp.example" in texts(portal("sam.colleague@othercorp.example"))
    assert "recommend" not in texts(portal("thanks again"))  # asked once
    customer = store.get(f"engage:identity:email:{email}")

    def scored() -> Optional[Dict[str, Any]]:
        record = record_of(stack, customer)
        dimension = record and record["engagement"]["dimensions"]["recommendation"]
        return dimension if dimension and dimension["log_score"] is not None and "referred_a_colleague" in dimension["by_rule"] else None

    dimension = eventually(scored, "the recommendation dimension to be scored", timeout=30)
    assert set(dimension["by_rule"]) == {"promoter", "answered_recommendation", "referred_a_colleague"}
