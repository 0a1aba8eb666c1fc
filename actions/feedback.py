"""action_capture_feedback: thank for in-use feedback, store it with sentiment and context."""

from __future__ import annotations

from typing import Any, List

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import escalation
from actions.base import EngageAction
from actions.constants import ACTION_CAPTURE_FEEDBACK, AFFIRM, DENY, PROBLEM_DESCRIPTION
from actions.conversation import in_use_context, latest_words, truncate
from actions.problems import GENERIC_PROBLEM_WORDS, MAX_DESCRIPTION
from actions.sentiment import NEGATIVE, POSITIVE, analyse
from actions.validation import describes_something
from analytics.schema import FEEDBACK

MAX_FEEDBACK = 4000

THANKS_POSITIVE = "Thank you, that's great to hear! I've passed it on to the team."
THANKS_NEUTRAL = "Thanks for the feedback. I've passed it on to the team."
SORRY_NEGATIVE = (
    "I'm sorry about that, and thank you for telling us. I've passed it on to the team. "
    "Would you like to report it as a problem so we can look into it?"
)
SORRY_HANDED_OVER = "I'm sorry about that, and thank you for telling us. I've passed it on to the team."
# Yes/no, as bot/data/rules.yml expects after this action (affirm opens problem_form).
NEGATIVE_BUTTONS = [
    {"title": "Yes, report it", "payload": f"/{AFFIRM}"},
    {"title": "No, thanks", "payload": f"/{DENY}"},
]
NOTHING_TO_CAPTURE = "I'd love to hear your feedback. What's on your mind?"


class ActionCaptureFeedback(EngageAction):
    def __init__(self, writer: Any = None, requester: Any = None) -> None:
        super().__init__(writer)
        self._requester = requester  # tests inject an ActionRequestHandover factory

    def name(self) -> str:
        return ACTION_CAPTURE_FEEDBACK

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        text = latest_words(tracker).strip()
        if not text:
            dispatcher.utter_message(text=NOTHING_TO_CAPTURE)
            return []
        sentiment = analyse(text)
        data = {
            "feedback": truncate(text, MAX_FEEDBACK),
            "sentiment": sentiment.label,
            "sentiment_score": sentiment.score,
            "mixed": sentiment.mixed,
            "context": in_use_context(tracker),
        }
        self.log(tracker, FEEDBACK, data)
        if sentiment.label == NEGATIVE:
            # Unhappy again in this session (console/config.yml triggers): a person joins, and takes
            # the problem from there (no "report it?" question beside the handover's own).
            if escalation.due(escalation.negative_in_session(tracker, SORRY_NEGATIVE, SORRY_HANDED_OVER), escalation.threshold("negative_feedback")):
                dispatcher.utter_message(text=SORRY_HANDED_OVER)
                return await escalation.hand_over(dispatcher, tracker, escalation.NEGATIVE_FEEDBACK, writer=self._writer, requester=self._requester)
            dispatcher.utter_message(text=SORRY_NEGATIVE, buttons=NEGATIVE_BUTTONS)
            if describes_something(text, GENERIC_PROBLEM_WORDS):
                # If they accept, problem_form starts with what they already said and asks only where.
                return [SlotSet(PROBLEM_DESCRIPTION, truncate(text, MAX_DESCRIPTION))]
        elif sentiment.label == POSITIVE:
            dispatcher.utter_message(text=THANKS_POSITIVE)
        else:
            dispatcher.utter_message(text=THANKS_NEUTRAL)
        return []
