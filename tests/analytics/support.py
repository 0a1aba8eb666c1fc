"""A scripted mix of customers' log events for the analytics tests."""

from __future__ import annotations

import random
from typing import Any, Dict, List

from analytics.dashboards.projection import VERSION
from analytics.schema import (
    FAQ_ANSWERED,
    FAQ_UNANSWERED,
    FEEDBACK,
    HANDOVER_REQUESTED,
    IDEA,
    LEAD_FIELD_CAPTURED,
    PROBLEM,
    SOURCE_ACTION,
    SOURCE_RASA,
    LogEvent,
)

CHANNELS = ("socketio", "whatsapp", "telegram", "portal")
LEAD_CUSTOMER = "C-00000000000000d1"


def conversation_events(seed: int, customers: int = 12, per_customer: int = 25) -> List[LogEvent]:
    """Interleaved conversations: messages, FAQ outcomes, feedback, ideas, problems, lead fields, handovers."""
    rng = random.Random(seed)
    events: List[LogEvent] = []
    clock = 1_767_225_600.0  # 2026-01-01
    for turn in range(per_customer):
        for number in range(customers):
            customer = f"C-{number:016x}"
            channel = CHANNELS[(number + turn // 10) % len(CHANNELS)]
            clock += rng.uniform(0.5, 30)
            if turn == 0:
                events.append(LogEvent("session_started", customer, SOURCE_RASA, channel, clock))
            events.append(LogEvent("user", customer, SOURCE_RASA, channel, clock, text=f"message {turn}", intent="ask_question"))
            roll = rng.random()
            context = {"product": "Insights", "page": f"/p/{turn}"} if channel == "portal" else {}
            if roll < 0.25:
                events.append(LogEvent(FAQ_ANSWERED, customer, SOURCE_ACTION, channel, clock + 0.1, data={"faq_id": "slack"}))
            elif roll < 0.35:
                events.append(LogEvent(FAQ_UNANSWERED, customer, SOURCE_ACTION, channel, clock + 0.1, data={"query": "x"}))
            elif roll < 0.5:
                events.append(LogEvent(FEEDBACK, customer, SOURCE_ACTION, channel, clock + 0.1, data={"feedback": f"charts are slow {turn}", "sentiment": "negative", "context": context}))
            elif roll < 0.6:
                events.append(LogEvent(IDEA, customer, SOURCE_ACTION, channel, clock + 0.1, data={"reference": f"IDEA-{turn}", "summary": "dark mode", "context": context}))
            elif roll < 0.65:
                events.append(LogEvent(PROBLEM, customer, SOURCE_ACTION, channel, clock + 0.1, data={"reference": f"PROB-{turn}", "description": "export fails", "context": context}))
            elif roll < 0.75:
                events.append(LogEvent(LEAD_FIELD_CAPTURED, customer, SOURCE_ACTION, channel, clock + 0.1, data={"field": "lead_budget", "value": "$25k–$100k / year", "raw": "around 40k"}))
            elif roll < 0.78:
                events.append(LogEvent(HANDOVER_REQUESTED, customer, SOURCE_ACTION, channel, clock + 0.1, data={"reason": "talk to a person"}))
            events.append(LogEvent("bot", customer, SOURCE_RASA, channel, clock + 0.2, text="reply"))
            events.append(LogEvent("action", customer, SOURCE_RASA, channel, clock + 0.2, data={"name": "action_listen"}))
    return events


def qualified_lead(at: float = 1_780_000_000.0) -> List[LogEvent]:
    """A WhatsApp customer who asks for a demo and answers the whole sales form (two answers normalised)."""
    events = [LogEvent("user", LEAD_CUSTOMER, SOURCE_RASA, "whatsapp", at, text="can we get a demo?", intent="request_demo")]
    answers = [("lead_name", "Dana Whitfield", None), ("lead_email", "dana@northbeam.example", None), ("lead_company", "Northbeam", None),
               ("lead_role", "Head of Operations", None), ("lead_need", "audit trail", None),
               ("lead_timeline", "Within a year", "next quarter"), ("lead_budget", "$25k–$100k / year", "around 40k")]
    for n, (name, value, raw) in enumerate(answers, 1):
        data = {"field": name, "value": value, **({"raw": raw} if raw else {})}
        events.append(LogEvent(LEAD_FIELD_CAPTURED, LEAD_CUSTOMER, SOURCE_ACTION, "whatsapp", at + n, data=data))
    return events


async def snapshot(client: Any, *prefixes: str) -> Dict[str, Any]:
    """Every key under the prefixes and its content, to compare runs byte for byte; the dashboards'
    version counter aside (it counts batches, not events)."""
    found: Dict[str, Any] = {}
    for prefix in prefixes:
        async for key in client.scan_iter(match=prefix + "*", count=1000):
            if key == VERSION:
                continue
            kind = await client.type(key)
            if kind == "hash":
                found[key] = sorted((await client.hgetall(key)).items())
            elif kind == "set":
                found[key] = sorted(await client.smembers(key))
            elif kind == "zset":
                found[key] = await client.zrange(key, 0, -1, withscores=True)
            elif ":hll:" in key:
                found[key] = await client.pfcount(key)  # HyperLogLog registers: binary, compared by what they count
            else:
                found[key] = await client.get(key)
    return found
