"""The problem form: vague reports are re-asked; real ones are stored with where, sentiment and context."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import problems
from actions.constants import PROBLEM_DESCRIPTION, PROBLEM_FORM, PROBLEM_LOCATION
from actions.problems import ActionSubmitProblem, ValidateProblemForm
from analytics.schema import PROBLEM
from tests.actions.conftest import EventLog, make_tracker

DOMAIN = {"forms": {PROBLEM_FORM: {"required_slots": [PROBLEM_DESCRIPTION, PROBLEM_LOCATION]}}, "slots": {}}


async def validate(slot: str, value: Any, requested: Optional[str]) -> tuple[List[Dict[str, Any]], List[str]]:
    tracker = make_tracker(str(value), "report_problem", slots={"requested_slot": requested}, slot_candidates={slot: value}, active_loop=PROBLEM_FORM)
    dispatcher = CollectingDispatcher()
    events = await ValidateProblemForm().run(dispatcher, tracker, DOMAIN)
    return events, [m["text"] for m in dispatcher.messages]


@pytest.mark.parametrize("text", ["I have a problem", "I found a bug", "something is broken", "it doesn't work", "I want to report an issue"])
async def test_vague_reports_are_re_asked(text: str) -> None:
    events, messages = await validate(PROBLEM_DESCRIPTION, text, requested=PROBLEM_DESCRIPTION)
    assert events == [SlotSet(PROBLEM_DESCRIPTION, None)]
    assert messages == [problems.ASK_DESCRIPTION_AGAIN]


async def test_a_vague_opening_message_is_rejected_silently() -> None:
    events, messages = await validate(PROBLEM_DESCRIPTION, "I want to report a bug", requested=None)
    assert events == [SlotSet(PROBLEM_DESCRIPTION, None)] and messages == []


@pytest.mark.parametrize("text", ["exporting responses to CSV gives an empty file", "the editor crashes when I paste a table", "SSO login loops"])
async def test_specific_reports_are_kept(text: str) -> None:
    events, messages = await validate(PROBLEM_DESCRIPTION, text, requested=PROBLEM_DESCRIPTION)
    assert events == [SlotSet(PROBLEM_DESCRIPTION, text)] and messages == []


@pytest.mark.parametrize("location, kept", [("Docs editor in Chrome", True), ("not sure", True), ("/deny", False), ("   ", False)])
async def test_location(location: str, kept: bool) -> None:
    events, messages = await validate(PROBLEM_LOCATION, location, requested=PROBLEM_LOCATION)
    if kept:
        assert events == [SlotSet(PROBLEM_LOCATION, location)] and messages == []
    else:
        assert events == [SlotSet(PROBLEM_LOCATION, None)] and messages == [problems.ASK_LOCATION_AGAIN]


async def test_submit_logs_the_problem_with_context_and_resets(event_log: EventLog) -> None:
    slots = {PROBLEM_DESCRIPTION: "the export to CSV is broken and it's really annoying", PROBLEM_LOCATION: "Forms"}
    tracker = make_tracker("Forms", slots=slots, metadata={"product": "Forms", "app_version": "5.2"}, sender_id="p-1")
    dispatcher = CollectingDispatcher()
    events = await ActionSubmitProblem(writer=event_log.writer).run(dispatcher, tracker, {})
    assert events == [SlotSet(PROBLEM_DESCRIPTION, None), SlotSet(PROBLEM_LOCATION, None)]
    reference = re.search(r"PRB-[0-9A-F]{6}", dispatcher.messages[0]["text"]).group(0)
    (record,) = await event_log.records(PROBLEM)
    assert record.data["reference"] == reference
    assert record.data["description"] == slots[PROBLEM_DESCRIPTION]
    assert record.data["location"] == "Forms"
    assert record.data["sentiment"] == "negative"
    assert record.data["context"] == {"product": "Forms", "app_version": "5.2"}


async def test_submit_without_a_description_says_so(event_log: EventLog) -> None:
    dispatcher = CollectingDispatcher()
    await ActionSubmitProblem(writer=event_log.writer).run(dispatcher, make_tracker("hm"), {})
    assert dispatcher.messages[0]["text"] == problems.LOST_PROBLEM
    assert await event_log.records() == []
