"""The idea form: generic summaries are re-asked, real ideas are stored with a reference and in-use context."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import ideas
from actions.constants import IDEA_BENEFIT, IDEA_FORM, IDEA_SUMMARY
from actions.ideas import ActionSubmitIdea, ValidateIdeaForm
from analytics.schema import IDEA
from tests.actions.conftest import EventLog, make_tracker

DOMAIN = {"forms": {IDEA_FORM: {"required_slots": [IDEA_SUMMARY, IDEA_BENEFIT]}}, "slots": {}}


async def validate(text: str, slot: str, value: Any, requested: Optional[str]) -> tuple[List[Dict[str, Any]], List[str]]:
    tracker = make_tracker(text, "suggest_idea", slots={"requested_slot": requested}, slot_candidates={slot: value}, active_loop=IDEA_FORM)
    dispatcher = CollectingDispatcher()
    events = await ValidateIdeaForm().run(dispatcher, tracker, DOMAIN)
    return events, [m["text"] for m in dispatcher.messages]


@pytest.mark.parametrize("summary", ["I have an idea", "I'd like to suggest a feature", "feature request", "an idea for Docs", "/suggest_idea", "💡💡"])
async def test_a_generic_summary_is_rejected_and_re_asked_when_it_was_the_question(summary: str) -> None:
    events, messages = await validate(summary, IDEA_SUMMARY, summary, requested=IDEA_SUMMARY)
    assert events == [SlotSet(IDEA_SUMMARY, None)]
    assert messages == [ideas.ASK_SUMMARY_AGAIN]


async def test_a_generic_opening_message_is_rejected_silently() -> None:
    # "I have an idea" opened the form and pre-filled the slot: the form's own question follows.
    events, messages = await validate("I have an idea", IDEA_SUMMARY, "I have an idea", requested=None)
    assert events == [SlotSet(IDEA_SUMMARY, None)]
    assert messages == []


@pytest.mark.parametrize("summary", ["dark mode", "Let me export Insights dashboards to PDF", "I have an idea: a Kanban view in Forms", "templates"])
async def test_a_specific_summary_is_kept(summary: str) -> None:
    events, messages = await validate(summary, IDEA_SUMMARY, summary, requested=IDEA_SUMMARY)
    assert events == [SlotSet(IDEA_SUMMARY, summary)]
    assert messages == []


async def test_summaries_are_tidied_and_capped() -> None:
    events, _ = await validate("x", IDEA_SUMMARY, "  offline   mode \n for Docs " + "y" * 2000, requested=IDEA_SUMMARY)
    value = events[0]["value"]
    assert value.startswith("offline mode for Docs") and len(value) <= 1000


@pytest.mark.parametrize("benefit, kept", [("saves me an hour a week", True), ("no idea", True), ("", False), ("/affirm", False), ("👍", False)])
async def test_benefit(benefit: str, kept: bool) -> None:
    events, messages = await validate(benefit or "x", IDEA_BENEFIT, benefit, requested=IDEA_BENEFIT)
    if kept:
        assert events == [SlotSet(IDEA_BENEFIT, benefit)] and messages == []
    else:
        assert events == [SlotSet(IDEA_BENEFIT, None)] and messages == [ideas.ASK_BENEFIT_AGAIN]


async def test_submit_logs_the_idea_with_context_replies_with_a_reference_and_resets(event_log: EventLog) -> None:
    tracker = make_tracker(
        "it would save us time",
        "inform",
        slots={IDEA_SUMMARY: "dark mode for Docs", IDEA_BENEFIT: "it would save us time"},
        metadata={"product": "Docs", "page": "/editor"},
        sender_id="idea-1",
    )
    dispatcher = CollectingDispatcher()
    events = await ActionSubmitIdea(writer=event_log.writer).run(dispatcher, tracker, {})
    reference = re.search(r"IDEA-[0-9A-F]{6}", dispatcher.messages[0]["text"]).group(0)
    (record,) = await event_log.records(IDEA)
    # Not a customer id ("idea-1"): no theme lookup, no question about updates.
    assert events == [SlotSet(IDEA_SUMMARY, None), SlotSet(IDEA_BENEFIT, None), SlotSet("idea_theme_offered", None), SlotSet("idea_event", record.event_id)]
    assert len(dispatcher.messages) == 1
    assert record.conversation_id == "idea-1"
    assert record.data == {
        "reference": reference,
        "summary": "dark mode for Docs",
        "benefit": "it would save us time",
        "context": {"product": "Docs", "page": "/editor"},
    }


async def test_submit_without_an_idea_says_so_and_logs_nothing(event_log: EventLog) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionSubmitIdea(writer=event_log.writer).run(dispatcher, make_tracker("ok", "affirm"), {})
    assert dispatcher.messages[0]["text"] == ideas.LOST_IDEA
    assert events == [SlotSet(IDEA_SUMMARY, None), SlotSet(IDEA_BENEFIT, None)]
    assert await event_log.records() == []


async def test_two_ideas_get_different_references(event_log: EventLog) -> None:
    slots = {IDEA_SUMMARY: "dark mode", IDEA_BENEFIT: "eyes"}
    for _ in range(2):
        await ActionSubmitIdea(writer=event_log.writer).run(CollectingDispatcher(), make_tracker("x", slots=slots), {})
    first, second = await event_log.records(IDEA)
    assert first.data["reference"] != second.data["reference"]
