"""The idea form: validate_idea_form and action_submit_idea (an `idea` log event with a reference).

When the idea joins a theme other customers asked for (the analytics service's /ideas/match),
the customer is told so and it counts as their vote; "it's something else" takes it out again
(action_idea_separate, an `idea_separated` event). Once per customer the assistant asks whether
they want to hear back when it ships (action_idea_updates, an `idea_updates_consent` event); the
analytics service keeps the answer and tells those who said yes (analytics/ideas/notify.py).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import EngageAction, EngageFormValidation
from actions.clients.eventlog import EventSink
from actions.clients.ideas import IdeaMatcher, ThemeMatch
from actions.clients.redis_client import shared_client
from actions.constants import (
    ACTION_IDEA_SEPARATE,
    ACTION_IDEA_UPDATES,
    ACTION_SUBMIT_IDEA,
    AFFIRM,
    DENY,
    IDEA_BENEFIT,
    IDEA_EVENT,
    IDEA_SLOTS,
    IDEA_SOMETHING_ELSE,
    IDEA_SUMMARY,
    IDEA_THEME_OFFERED,
    IDEA_UPDATES_ASKED,
    VALIDATE_IDEA_FORM,
)
from actions.conversation import in_use_context, latest_intent
from analytics.customers import CUSTOMER_ID
from analytics.ideas.themes import CONSENT
from actions.references import reference
from actions.validation import clean_text, describes_something, is_free_text_answer
from analytics.schema import IDEA, IDEA_SEPARATED, IDEA_UPDATES_CONSENT

logger = logging.getLogger(__name__)

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
THANKS = (
    "Thank you! I've passed your idea to our product team. Your reference is {ref}. "
    "We read every suggestion; we can't promise every one gets built, but yours is on the list."
)
OTHERS_TOO = (
    "Thank you! Others have asked for \u201c{label}\u201d too; I've added your vote. Your reference is {ref}. "
    "If your idea is something else, tell me and I'll keep it separate."
)
SOMETHING_ELSE_BUTTON = {"title": "It's something else", "payload": f"/{IDEA_SOMETHING_ELSE}"}
SEPARATED = "Got it: I've recorded it as a new idea of its own, not as a vote. Thank you for telling me."
# "That's not what I meant" with no theme on offer (after an answer, say): nothing about ideas to undo.
NOTHING_TO_SEPARATE = "Sorry, I'm not sure what you mean. Could you say it in other words?"
ASK_UPDATES = "Would you like me to let you know here when it ships (or if we decide against it)?"
UPDATES_BUTTONS = [{"title": "Yes, tell me", "payload": f"/{AFFIRM}"}, {"title": "No, thanks", "payload": f"/{DENY}"}]
UPDATES_YES = "I'll let you know, once, on the channel you last used with us."
UPDATES_NO = "No problem, I won't send updates about your ideas."


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


class IdeaAction(EngageAction):
    """Shared by the idea actions: the theme matcher and Redis, injectable for tests."""

    def __init__(self, matcher: Optional[IdeaMatcher] = None, client: Any = None, writer: Optional[EventSink] = None) -> None:
        super().__init__(writer)
        self._matcher = matcher
        self._client = client

    @property
    def matcher(self) -> IdeaMatcher:
        return self._matcher if self._matcher is not None else IdeaMatcher()

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else shared_client()


class ActionSubmitIdea(IdeaAction):
    def name(self) -> str:
        return ACTION_SUBMIT_IDEA

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        summary = tracker.get_slot(IDEA_SUMMARY)
        benefit = tracker.get_slot(IDEA_BENEFIT)
        if not summary:
            dispatcher.utter_message(text=LOST_IDEA)
            return [SlotSet(slot, None) for slot in IDEA_SLOTS]
        ref = reference("IDEA")
        customer = tracker.sender_id or ""
        found: Optional[ThemeMatch] = await self.matcher.match(summary, customer) if CUSTOMER_ID.match(customer) else None
        told = found if found is not None and found.others > 0 and found.label else None
        data: Dict[str, Any] = {"reference": ref, "summary": summary, "benefit": benefit, "context": in_use_context(tracker)}
        if told is not None:
            data["theme"] = told.theme  # the projection counts it as a vote there: what the customer was told
        event = self.log(tracker, IDEA, data)
        events: List[EventType] = [SlotSet(slot, None) for slot in IDEA_SLOTS]
        if told is not None and event is not None:
            dispatcher.utter_message(text=OTHERS_TOO.format(label=told.label, ref=ref), buttons=[SOMETHING_ELSE_BUTTON])
            events += [SlotSet(IDEA_THEME_OFFERED, told.theme), SlotSet(IDEA_EVENT, event.event_id)]
        else:
            dispatcher.utter_message(text=THANKS.format(ref=ref))
            events += [SlotSet(IDEA_THEME_OFFERED, None), SlotSet(IDEA_EVENT, event.event_id if event else None)]
        if await self._may_ask_for_updates(tracker):
            dispatcher.utter_message(text=ASK_UPDATES, buttons=UPDATES_BUTTONS)
            events.append(SlotSet(IDEA_UPDATES_ASKED, True))
        return events

    async def _may_ask_for_updates(self, tracker: Tracker) -> bool:
        """Once: a known customer who has not answered before (in the log the service keeps)."""
        if not CUSTOMER_ID.match(tracker.sender_id or "") or tracker.get_slot(IDEA_UPDATES_ASKED):
            return False
        try:
            return not await self.client.hexists(CONSENT, tracker.sender_id)
        except Exception:  # noqa: BLE001 - not knowing is no reason to ask twice: skip the question this time
            logger.warning("could not read idea-update consent for %s; not asking now", tracker.sender_id, exc_info=True)
            return False


class ActionIdeaSeparate(IdeaAction):
    """ "It's something else": the idea leaves the theme it was counted in."""

    def name(self) -> str:
        return ACTION_IDEA_SEPARATE

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        theme, idea = tracker.get_slot(IDEA_THEME_OFFERED), tracker.get_slot(IDEA_EVENT)
        if not theme or not idea:
            dispatcher.utter_message(text=NOTHING_TO_SEPARATE)
            return []
        self.log(tracker, IDEA_SEPARATED, {"idea": idea, "theme": theme})
        dispatcher.utter_message(text=SEPARATED)
        return [SlotSet(IDEA_THEME_OFFERED, None)]


class ActionIdeaUpdates(IdeaAction):
    """Yes or no to hearing back about their ideas (the latest answer counts)."""

    def name(self) -> str:
        return ACTION_IDEA_UPDATES

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        yes = latest_intent(tracker).get("name") == AFFIRM
        self.log(tracker, IDEA_UPDATES_CONSENT, {"consent": yes})
        dispatcher.utter_message(text=UPDATES_YES if yes else UPDATES_NO)
        return [SlotSet(IDEA_UPDATES_ASKED, False)]
