"""The problem form: validate_problem_form and action_submit_problem (a `problem` log event with a reference)."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import SUPPORT_EMAIL, EngageAction, EngageFormValidation
from actions.constants import (
    ACTION_SUBMIT_PROBLEM,
    PROBLEM_DESCRIPTION,
    PROBLEM_LOCATION,
    PROBLEM_SLOTS,
    VALIDATE_PROBLEM_FORM,
)
from actions.conversation import in_use_context
from actions.references import reference
from actions.sentiment import analyse
from actions.validation import clean_text, describes_something, is_free_text_answer
from analytics.schema import PROBLEM

MAX_DESCRIPTION = 2000
MAX_LOCATION = 300

GENERIC_PROBLEM_WORDS = frozenset(
    """
    problem problems issue issues bug bugs report reporting reported error errors wrong broken broke
    working work works doesn't doesnt isn't isnt won't wont can't cant help trouble found find having
    glitch fault defect fix fixed happening happened going on
    """.split()
)

ASK_DESCRIPTION_AGAIN = (
    "Sorry to hear that. What exactly is going wrong? "
    "For example: \"Exporting a form's responses to CSV gives an empty file\"."
)
ASK_LOCATION_AGAIN = (
    "Where did it happen? For example: \"Docs, in the page editor, in Chrome\" or \"the iOS app\"."
)
LOST_PROBLEM = "Sorry, I lost track of the problem you described. Could you tell me again what went wrong?"


class ValidateProblemForm(EngageFormValidation):
    def name(self) -> str:
        return VALIDATE_PROBLEM_FORM

    async def validate_problem_description(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        description = clean_text(slot_value, MAX_DESCRIPTION)
        if not describes_something(description, GENERIC_PROBLEM_WORDS):
            # Silent when "I want to report a bug" just opened the form: utter_ask follows anyway.
            if tracker.get_slot("requested_slot") == PROBLEM_DESCRIPTION:
                dispatcher.utter_message(text=ASK_DESCRIPTION_AGAIN)
            return {PROBLEM_DESCRIPTION: None}
        return {PROBLEM_DESCRIPTION: description}

    async def validate_problem_location(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        location = clean_text(slot_value, MAX_LOCATION)
        # "not sure" is an honest answer; only empty, payload or emoji-only text is re-asked.
        if not is_free_text_answer(location):
            dispatcher.utter_message(text=ASK_LOCATION_AGAIN)
            return {PROBLEM_LOCATION: None}
        return {PROBLEM_LOCATION: location}


class ActionSubmitProblem(EngageAction):
    def name(self) -> str:
        return ACTION_SUBMIT_PROBLEM

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        description = tracker.get_slot(PROBLEM_DESCRIPTION)
        location = tracker.get_slot(PROBLEM_LOCATION)
        if not description:
            dispatcher.utter_message(text=LOST_PROBLEM)
            return [SlotSet(slot, None) for slot in PROBLEM_SLOTS]
        ref = reference("PRB")
        sentiment = analyse(description)
        self.log(
            tracker,
            PROBLEM,
            {
                "reference": ref,
                "description": description,
                "location": location,
                "sentiment": sentiment.label,
                "sentiment_score": sentiment.score,
                "context": in_use_context(tracker),
            },
        )
        dispatcher.utter_message(
            text=(
                f"Thanks for reporting it. Your reference is {ref}; our support team will look into it. "
                f"If it's blocking your work, write to {SUPPORT_EMAIL} with that reference."
            )
        )
        return [SlotSet(slot, None) for slot in PROBLEM_SLOTS]
