"""action_fallback: ask to rephrase; after two misunderstandings in a row, offer a person."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import escalation
from actions.base import EngageAction
from actions.constants import ACTION_FALLBACK, NLU_FALLBACK, REQUEST_HUMAN
from actions.conversation import latest_intent
from actions.faq import DONT_KNOW, DONT_KNOW_NOTED
from analytics.schema import FALLBACK

logger = logging.getLogger(__name__)

UTTER_DEFAULT = "utter_default"
OFFER_HUMAN = (
    "Sorry, I'm still not getting it. Would you like to talk to a person, or try asking another way?"
)
OFFER_BUTTONS = [{"title": "Talk to a person", "payload": f"/{REQUEST_HUMAN}"}]
STILL_LOST = "Sorry, I'm still not getting it, so I'm bringing in a person."


def consecutive_fallbacks(tracker: Tracker) -> int:
    """How many user messages in a row, counting the latest, ended in this fallback.

    Reads the raw event list, which still holds messages that an earlier
    fallback reverted.
    """
    count = 1
    current_turn_has_fallback = False
    seen_latest_user = False
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "user":
            if not seen_latest_user:
                seen_latest_user = True
                continue
            if not current_turn_has_fallback:
                break
            count += 1
            current_turn_has_fallback = False
        elif seen_latest_user and kind == "action" and event.get("name") == ACTION_FALLBACK:
            current_turn_has_fallback = True
        elif kind in ("session_started", "restart"):
            break
    return count


def nearest_intent(tracker: Tracker) -> Optional[Dict[str, Any]]:
    """The best real intent behind an nlu_fallback (what the model almost understood)."""
    for candidate in tracker.latest_message.get("intent_ranking") or []:
        if isinstance(candidate, dict) and candidate.get("name") not in (None, NLU_FALLBACK):
            return {"name": candidate.get("name"), "confidence": candidate.get("confidence")}
    return None


class ActionFallback(EngageAction):
    def __init__(self, writer: Any = None, requester: Any = None) -> None:
        super().__init__(writer)
        self._requester = requester  # tests inject an ActionRequestHandover factory

    def name(self) -> str:
        return ACTION_FALLBACK

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        count = consecutive_fallbacks(tracker)
        intent = latest_intent(tracker)
        offered_human = count >= 2
        # Misses in a row (fallbacks and FAQ abstains; console/config.yml triggers) queue a person.
        rule = escalation.threshold("misses_in_a_row")
        misses = max(count, escalation.misses_in_a_row(tracker, DONT_KNOW, DONT_KNOW_NOTED))
        handed_over = escalation.due(misses, rule)
        after: List[EventType] = []
        if handed_over:
            dispatcher.utter_message(text=STILL_LOST)
            after = await escalation.hand_over(dispatcher, tracker, escalation.MISSES, writer=self._writer, requester=self._requester)
        elif offered_human:
            dispatcher.utter_message(text=OFFER_HUMAN, buttons=OFFER_BUTTONS)
        else:
            dispatcher.utter_message(response=UTTER_DEFAULT)
        self.log(
            tracker,
            FALLBACK,
            {
                "consecutive": count,
                "offered_human": offered_human,
                "intent": intent.get("name"),
                "confidence": intent.get("confidence"),
                "nearest_intent": nearest_intent(tracker),
                "handed_over": handed_over,
            },
        )
        if after:
            # A ticket that asks how to reach the customer: the form runs next. Not reverted, so the
            # form starts from this action and does not read the message before as the answer.
            return after
        # Like Rasa's action_default_fallback: forget the misunderstood message so it
        # does not steer the next prediction (and a core fallback cannot repeat itself).
        return [UserUtteranceReverted()]
