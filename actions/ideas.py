"""The idea form: validate_idea_form and action_submit_idea (an `idea` log event with a reference)."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import EngageAction, EngageFormValidation
from actions.constants import ACTION_SUBMIT_IDEA, IDEA_BENEFIT, IDEA_SLOTS, IDEA_SUMMARY, VALIDATE_IDEA_FORM
from actions.conversation import in_use_context
from actions.references import reference
from actions.validation import clean_text, describes_something, is_free_text_answer
from analytics.schema import IDEA

MAX_SUMMARY = 1000
MAX_BENEFIT = 1000

GENERIC_IDEA_WORDS = frozenset(
    """
    idea ideas suggestion suggestions suggest suggesting propose proposal feature features request requests
    improvement improvements improve improving better add adding feedback wish wishlist enhancement
    """.split()
)

ASK_SUMMARY_AGAIN = (
    "I'd love to hear it! What exactly would you like us to add or change? "
    "For example: \"Let me export Insights dashboards to PDF\"."
)
ASK_BENEFIT_AGAIN = "Could you tell me in a few words how that would help you? For example: \"It would save me an hour every week\"."
LOST_IDEA = "Sorry, I lost track of your idea. Could you tell me about it again?"


class ValidateIdeaForm(EngageFormValidation):
    def name(self) -> str:
        return VALIDATE_IDEA_FORM

    async def validate_idea_summary(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        summary = clean_text(slot_value, MAX_SUMMARY)
        if not describes_something(summary, GENERIC_IDEA_WORDS):
            # Stay silent when the form was just opened by "I have an idea": utter_ask says the rest.
            if tracker.get_slot("requested_slot") == IDEA_SUMMARY:
                dispatcher.utter_message(text=ASK_SUMMARY_AGAIN)
            return {IDEA_SUMMARY: None}
        return {IDEA_SUMMARY: summary}

    async def validate_idea_benefit(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        benefit = clean_text(slot_value, MAX_BENEFIT)
        # Any words are a fine answer here ("no idea" included); only payloads and emoji-only are not.
        if not is_free_text_answer(benefit):
            dispatcher.utter_message(text=ASK_BENEFIT_AGAIN)
            return {IDEA_BENEFIT: None}
        return {IDEA_BENEFIT: benefit}


class ActionSubmitIdea(EngageAction):
    def name(self) -> str:
        return ACTION_SUBMIT_IDEA

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        summary = tracker.get_slot(IDEA_SUMMARY)
        benefit = tracker.get_slot(IDEA_BENEFIT)
        if not summary:
            dispatcher.utter_message(text=LOST_IDEA)
            return [SlotSet(slot, None) for slot in IDEA_SLOTS]
        ref = reference("IDEA")
        self.log(
            tracker,
            IDEA,
            {"reference": ref, "summary": summary, "benefit": benefit, "context": in_use_context(tracker)},
        )
        dispatcher.utter_message(
            text=(
                f"Thank you! I've passed your idea to our product team. Your reference is {ref}. "
                "We read every suggestion; we can't promise every one gets built, but yours is on the list."
            )
        )
        return [SlotSet(slot, None) for slot in IDEA_SLOTS]
