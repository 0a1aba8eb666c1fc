"""The themes projection on a real Redis with the real MiniLM: votes, joins, stable ids, redelivery, replay."""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import pytest
import redis.asyncio

from analytics.ideas.config import load_settings
from analytics.ideas.themes import APPLIED, ITEMS, NEW, THEMES, VOTE, ThemeStore, demand
from analytics.ideas.weights import DemandWeights
from analytics.schema import FEEDBACK, IDEA, SOURCE_ACTION, LogEvent
from tests.knowledge_base.helpers import minilm


def idea(customer: str, text: str, at: float, channel: str = "socketio") -> Tuple[str, LogEvent]:
    event = LogEvent(IDEA, customer, SOURCE_ACTION, channel, at, data={"reference": "IDEA-1", "summary": text, "benefit": "", "context": {}})
    return f"{int(at * 1000)}-0", event


def ideas() -> List[Tuple[str, LogEvent]]:
    return [
        idea("C-1", "add dark mode", 1.0),
        idea("C-2", "please add a dark mode", 2.0, "whatsapp"),
        idea("C-3", "export my dashboard as a PDF", 3.0, "telegram"),
        (f"{4000}-0", LogEvent(FEEDBACK, "C-3", SOURCE_ACTION, "portal", 4.0, data={"feedback": "nice", "sentiment": "positive"})),
        idea("C-3", "can we get dark mode in the editor?", 5.0, "portal"),
        idea("C-4", "🌙🌙", 6.0),
    ]


async def snapshot(client: redis.asyncio.Redis) -> tuple:
    return await client.hgetall(THEMES), await client.hgetall(ITEMS), sorted(await client.smembers(APPLIED))


@pytest.mark.minilm
async def test_near_duplicates_vote_and_new_requests_start_themes_with_stable_ids(client: redis.asyncio.Redis) -> None:
    store = ThemeStore(client, minilm(), load_settings())
    assert await store.apply_batch(ideas()) == {}
    themes = {theme["id"]: theme for theme in await store.themes()}
    assert set(themes) == {"TH-1", "TH-2"}
    dark = await store.items(themes["TH-1"]["members"])
    assert [item["customer"] for item in dark] == ["C-1", "C-2", "C-3"]
    assert [item["how"] for item in dark] == [NEW, VOTE, VOTE]
    assert dark[1]["duplicate_of"] == dark[0]["event_id"]
    assert [item["text"] for item in await store.items(themes["TH-2"]["members"])] == ["export my dashboard as a PDF"]


@pytest.mark.minilm
async def test_redelivery_changes_nothing_and_a_replay_gives_the_same_bytes(client: redis.asyncio.Redis) -> None:
    store = ThemeStore(client, minilm(), load_settings())
    events = ideas()
    await store.apply_batch(events)
    first = await snapshot(client)
    await store.apply_batch(events[1:3])
    assert await snapshot(client) == first
    await store.reset()
    assert await snapshot(client) == ({}, {}, [])
    for entry in events:  # one at a time this time, as a slow stream would deliver them
        await store.apply_batch([entry])
    assert await snapshot(client) == first


@pytest.mark.minilm
async def test_a_second_consumer_sees_the_first_ones_themes(client: redis.asyncio.Redis) -> None:
    settings = load_settings()
    one, two = ThemeStore(client, minilm(), settings), ThemeStore(client, minilm(), settings)
    events = ideas()
    await one.apply_batch(events[:1])
    await two.apply_batch(events[1:2])  # a duplicate of what the other consumer stored
    themes = await one.themes()
    assert len(themes) == 1 and len(themes[0]["members"]) == 2
    await one.apply_batch(events[2:3])  # the first consumer reloads after the second one's write
    assert sorted(theme["id"] for theme in await one.themes()) == ["TH-1", "TH-2"]


def test_three_opportunities_outrank_ten_mentions_by_one_visitor() -> None:
    weights = DemandWeights()
    few = [{"customer": f"C-{n}", "channel": "portal", "how": NEW} for n in range(3)]
    many = [{"customer": "C-9", "channel": "socketio", "how": VOTE} for _ in range(10)]
    requesters = {"C-0": ("opportunity", 12.0), "C-1": ("opportunity", 3.0), "C-2": ("opportunity", 0.0), "C-9": ("visitor", 40.0)}
    strong, loud = demand(few, requesters, weights), demand(many, requesters, weights)
    assert (strong["customers"], strong["mentions"], loud["customers"], loud["mentions"]) == (3, 3, 1, 10)
    assert strong["score"] > loud["score"]
    assert loud["votes"] == 10 and loud["channels"] == {"socketio": 10}
    assert {row["customer"]: row["stage"] for row in strong["requesters"]} == {"C-0": "opportunity", "C-1": "opportunity", "C-2": "opportunity"}


@pytest.mark.minilm
async def test_the_service_keeps_themes_from_the_log_and_staff_read_them_by_demand(client: redis.asyncio.Redis) -> None:
    import io
    import json
    from types import SimpleNamespace

    from analytics.ideas import cli
    from analytics.schema import EVENTS_STREAM
    from analytics.service import record_store
    from analytics.stream.consumer import StreamConsumer
    from tests.analytics.support import LEAD_CUSTOMER, qualified_lead

    at = 1_780_000_100.0
    log = [*qualified_lead(), idea(LEAD_CUSTOMER, "please add a dark mode", at, "whatsapp")[1],
           idea("C-00000000000000a1", "add dark mode", at + 1)[1], idea("C-00000000000000a1", "add dark mode!", at + 2)[1],
           idea("C-00000000000000a2", "integrate with Microsoft Teams", at + 3, "telegram")[1]]
    for event in log:
        await client.xadd(EVENTS_STREAM, event.to_fields())
    records = record_store(client)
    consumer = StreamConsumer(client, [records, ThemeStore(client, minilm(), load_settings())])
    await consumer.ensure_group()
    await consumer.drain()

    out = io.StringIO()
    assert await cli.command(client, records, SimpleNamespace(ideas_command="themes", json=True, limit=20), out, encoder=minilm()) == 0
    rows = json.loads(out.getvalue())
    assert [row["id"] for row in rows] == ["TH-1", "TH-2"]  # dark mode: a lead and a visitor; Teams: one visitor
    dark = rows[0]
    assert "dark mode" in dark["label"] and dark["areas"] == {"Platform / Appearance": 3}
    assert (dark["demand"]["customers"], dark["demand"]["mentions"], dark["demand"]["votes"]) == (2, 3, 2)
    stages = {row["customer"]: row["stage"] for row in dark["demand"]["requesters"]}
    assert stages["C-00000000000000a1"] == "visitor" and stages[LEAD_CUSTOMER] not in ("visitor", "suspect")

    out = io.StringIO()
    assert await cli.command(client, records, SimpleNamespace(ideas_command="show", theme="TH-2", json=False), out, encoder=minilm()) == 0
    assert "integrate with Microsoft Teams" in out.getvalue() and "Integrations / Microsoft Teams" in out.getvalue()
    assert await cli.command(client, records, SimpleNamespace(ideas_command="show", theme="TH-9", json=False), io.StringIO(), encoder=minilm()) == 1


def test_a_near_duplicate_of_one_member_does_not_chain_a_theme_it_is_far_from() -> None:
    from analytics.ideas.memory import _Memory, decide

    settings = load_settings()  # duplicates 0.55, theme rule: mean cosine to members >= 0.6
    e = np.eye(4, dtype=np.float32)
    bridge = 0.6 * e[0] + 0.8 * e[1]
    memory = _Memory()
    memory.add("a1", e[0], "TH-1")
    memory.add("a2", bridge, "TH-1")
    assert decide(e[1], memory, settings) == (NEW, None, None)  # 0.8 to a2, but 0.4 to TH-1 on average
    assert decide(bridge, memory, settings) == (VOTE, "TH-1", "a2")
    leaning = (0.9 * e[0] + 0.3 * e[1] + 0.3 * e[2]) / np.linalg.norm([0.9, 0.3, 0.3])
    assert decide(leaning.astype(np.float32), memory, settings) == (VOTE, "TH-1", "a1")


class Counting:
    """MiniLM, noting each text it is asked to encode."""

    def __init__(self, encoder) -> None:  # type: ignore[no-untyped-def]
        self.encoder = encoder
        self.texts: List[str] = []

    def identity(self):  # type: ignore[no-untyped-def]
        return self.encoder.identity()

    def encode(self, texts):  # type: ignore[no-untyped-def]
        self.texts.extend(texts)
        return self.encoder.encode(texts)


@pytest.mark.minilm
async def test_a_text_told_many_times_in_a_batch_is_encoded_once(client: redis.asyncio.Redis) -> None:
    encoder = Counting(minilm())
    store = ThemeStore(client, encoder, load_settings())
    told = [idea(f"C-{n}", "add dark mode", float(n)) for n in range(1, 4)] + [idea("C-4", "export my dashboard as a PDF", 4.0)]
    assert await store.apply_batch(told) == {}
    assert encoder.texts == ["add dark mode", "export my dashboard as a PDF"]
    items = await store.items([event.event_id for _, event in told])
    assert [item["how"] for item in items] == [NEW, VOTE, VOTE, NEW]
    assert {item["duplicate_of"] for item in items[1:3]} == {items[0]["event_id"]}
    await store.apply_batch([idea("C-5", "add dark mode", 5.0)])
    assert encoder.texts == ["add dark mode", "export my dashboard as a PDF"]  # cached since
