"""A failing action or validator still answers the customer usefully, and logs."""

from __future__ import annotations

import logging

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.base import EngageAction, EngageFormValidation
from actions.ideas import ValidateIdeaForm
from analytics.schema import LogEvent
from tests.actions.conftest import make_tracker


class Exploding(EngageAction):
    def name(self) -> str:
        return "action_exploding_for_test"

    async def handle(self, dispatcher, tracker, domain):
        raise KeyError("boom")


class ExplodingValidator(ValidateIdeaForm):
    # Its own name: the SDK registers every Action subclass it can see, tests' included.
    def name(self) -> str:
        return "validate_exploding_for_test"

    def form_name(self) -> str:
        return "idea_form"

    async def validate_idea_summary(self, slot_value, dispatcher, tracker, domain):
        raise ValueError("bad validator")


class BrokenSink:
    def submit(self, event: LogEvent) -> None:
        raise RuntimeError("sink down")


async def test_a_failing_action_replies_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    dispatcher = CollectingDispatcher()
    with caplog.at_level(logging.ERROR):
        assert await Exploding().run(dispatcher, make_tracker("hi", sender_id="c-x"), {}) == []
    assert dispatcher.messages[0]["text"] == EngageAction.failure_text
    assert "action_exploding_for_test failed for conversation c-x" in caplog.text


async def test_a_failing_validator_re_asks_instead_of_accepting() -> None:
    domain = {"forms": {"idea_form": {"required_slots": ["idea_summary", "idea_benefit"]}}}
    tracker = make_tracker("dark mode", slots={"requested_slot": "idea_summary"}, slot_candidates={"idea_summary": "dark mode"})
    dispatcher = CollectingDispatcher()
    events = await ExplodingValidator().run(dispatcher, tracker, domain)
    assert events == [SlotSet("idea_summary", None)]
    assert dispatcher.messages[-1]["text"] == EngageFormValidation.failure_text


async def test_a_broken_log_never_breaks_the_conversation(caplog: pytest.LogCaptureFixture) -> None:
    from actions.feedback import ActionCaptureFeedback

    dispatcher = CollectingDispatcher()
    with caplog.at_level(logging.ERROR):
        await ActionCaptureFeedback(writer=BrokenSink()).run(dispatcher, make_tracker("great app", "give_feedback"), {})
    assert "Thank you" in dispatcher.messages[0]["text"]
    assert "could not log a feedback event" in caplog.text
