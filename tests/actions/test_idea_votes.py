"""Ideas in the conversation: "others have asked for ... too" from the analytics service's match,
"it's something else", and asking once whether the customer wants to hear back."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

import redis.asyncio
from aiohttp import web
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import ideas
from actions.clients.ideas import IdeaMatcher, ThemeMatch
from actions.constants import IDEA_BENEFIT, IDEA_EVENT, IDEA_SUMMARY, IDEA_THEME_OFFERED, IDEA_UPDATES_ASKED
from actions.ideas import ActionIdeaSeparate, ActionIdeaUpdates, ActionSubmitIdea
from analytics.ideas.config import load_settings
from analytics.ideas.themes import CONSENT, ThemeStore
from analytics.schema import IDEA, IDEA_SEPARATED, IDEA_UPDATES_CONSENT
from tests.actions.conftest import EventLog, make_tracker
from tests.analytics.ideas.support import TableEncoder, idea
from tests.conftest import free_port

CUSTOMER = "C-00000000000000c1"
SLOTS = {IDEA_SUMMARY: "please give us a night theme", IDEA_BENEFIT: "my eyes"}


class Answer:
    """What the analytics service answered, for the action's own logic (the HTTP client is tested below)."""

    def __init__(self, found: Optional[ThemeMatch]) -> None:
        self.found = found
        self.asked: list = []

    async def match(self, text: str, customer: str) -> Optional[ThemeMatch]:
        self.asked.append((text, customer))
        return self.found


async def submit(event_log: EventLog, client: redis.asyncio.Redis, found: Optional[ThemeMatch], slots: Optional[dict] = None) -> tuple:
    dispatcher = CollectingDispatcher()
    matcher = Answer(found)
    tracker = make_tracker("my eyes", "inform", slots={**SLOTS, **(slots or {})}, sender_id=CUSTOMER, channel="telegram")
    events = await ActionSubmitIdea(matcher=matcher, client=client, writer=event_log.writer).run(dispatcher, tracker, {})
    return events, dispatcher.messages, matcher


async def test_an_idea_others_asked_for_is_a_vote_the_customer_is_told_about(event_log: EventLog, client: redis.asyncio.Redis) -> None:
    events, messages, matcher = await submit(event_log, client, ThemeMatch("TH-4", "vote", "dark mode", 3))
    assert matcher.asked == [("please give us a night theme", CUSTOMER)]
    (record,) = await event_log.records(IDEA)
    assert record.data["theme"] == "TH-4"
    assert messages[0]["text"].startswith("Thank you! Others have asked for \u201cdark mode\u201d too; I've added your vote. Your reference is IDEA-")
    assert messages[0]["buttons"] == [ideas.SOMETHING_ELSE_BUTTON]
    assert messages[1]["text"] == ideas.ASK_UPDATES and [b["payload"] for b in messages[1]["buttons"]] == ["/affirm", "/deny"]
    assert SlotSet(IDEA_THEME_OFFERED, "TH-4") in events and SlotSet(IDEA_EVENT, record.event_id) in events and SlotSet(IDEA_UPDATES_ASKED, True) in events


async def test_a_new_idea_or_one_only_this_customer_asked_for_gets_the_plain_thanks(event_log: EventLog, client: redis.asyncio.Redis) -> None:
    for found in (None, ThemeMatch("TH-2", "joined", "export pdf", 0)):
        events, messages, _ = await submit(event_log, client, found)
        assert "Others have asked" not in messages[0]["text"] and "Your reference is IDEA-" in messages[0]["text"]
        assert SlotSet(IDEA_THEME_OFFERED, None) in events
    assert all("theme" not in record.data for record in await event_log.records(IDEA))


async def test_the_updates_question_is_asked_once(event_log: EventLog, client: redis.asyncio.Redis) -> None:
    _, messages, _ = await submit(event_log, client, None, slots={IDEA_UPDATES_ASKED: True})  # asked earlier in this conversation
    assert [m["text"] for m in messages if m["text"] == ideas.ASK_UPDATES] == []
    await client.hset(CONSENT, CUSTOMER, json.dumps({"consent": False}))  # answered on another channel, kept by the service
    _, messages, _ = await submit(event_log, client, None)
    assert len(messages) == 1


async def test_yes_and_no_are_logged_and_something_else_separates_the_idea(event_log: EventLog) -> None:
    for intent, text in (("affirm", ideas.UPDATES_YES), ("deny", ideas.UPDATES_NO)):
        dispatcher = CollectingDispatcher()
        events = await ActionIdeaUpdates(writer=event_log.writer).run(dispatcher, make_tracker("x", intent, sender_id=CUSTOMER), {})
        assert dispatcher.messages[0]["text"] == text and events == [SlotSet(IDEA_UPDATES_ASKED, False)]
    assert [r.data["consent"] for r in await event_log.records(IDEA_UPDATES_CONSENT)] == [True, False]

    dispatcher = CollectingDispatcher()
    tracker = make_tracker("that's something else", "idea_something_else", sender_id=CUSTOMER, slots={IDEA_THEME_OFFERED: "TH-4", IDEA_EVENT: "e1"})
    assert await ActionIdeaSeparate(writer=event_log.writer).run(dispatcher, tracker, {}) == [SlotSet(IDEA_THEME_OFFERED, None)]
    assert dispatcher.messages[0]["text"] == ideas.SEPARATED
    (separated,) = await event_log.records(IDEA_SEPARATED)
    assert separated.data == {"idea": "e1", "theme": "TH-4"}
    dispatcher = CollectingDispatcher()
    await ActionIdeaSeparate(writer=event_log.writer).run(dispatcher, make_tracker("something else", "idea_something_else", sender_id=CUSTOMER), {})
    assert dispatcher.messages[0]["text"] == ideas.NOTHING_TO_SEPARATE and len(await event_log.records(IDEA_SEPARATED)) == 1


async def test_the_client_asks_the_real_service_and_tolerates_it_being_down(client: redis.asyncio.Redis, monkeypatch: Any) -> None:
    from analytics.service import create_app
    from analytics.stream.consumer import StreamConsumer

    monkeypatch.setenv("ENGAGE_ACTION_TOKEN", "s3cret")
    encoder = TableEncoder({"add dark mode": [1, 0], "dark mode please": [0.98, 0.1], "please give us a night theme": [0.9, 0.2], "pdf export": [0, 1]})
    store = ThemeStore(client, encoder, load_settings())
    await store.apply_batch([idea("C-00000000000000a1", "add dark mode", 1.0), idea("C-00000000000000a2", "dark mode please", 2.0)])
    runner = web.AppRunner(create_app(StreamConsumer(client, []), themes=store))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        # A generous timeout: the first match loads the labeller, slow on a busy machine; the test is about answers.
        matcher = IdeaMatcher(f"http://127.0.0.1:{port}", timeout=60.0)
        found = await matcher.match("please give us a night theme", CUSTOMER)
        assert found is not None and (found.theme, found.how, found.others) == ("TH-1", "vote", 2) and "dark mode" in found.label
        assert await matcher.match("pdf export", CUSTOMER) is None  # would start a theme of its own
        assert await store.themes() and len((await store.themes())[0]["members"]) == 2  # asking stores nothing
        assert await IdeaMatcher(f"http://127.0.0.1:{port}", timeout=60.0, token="wrong").match("please give us a night theme", CUSTOMER) is None  # 401
    finally:
        await runner.cleanup()
    assert await IdeaMatcher(f"http://127.0.0.1:{port}", timeout=1.0).match("add dark mode", CUSTOMER) is None  # service down
