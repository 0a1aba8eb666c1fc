"""Recommendation and referral: the signal behind the recommendation dimension of engagement.

action_thank answers a "thanks"; once in a while (a verified customer, at most every 90 days,
after a conversation that got somewhere in this session) it also asks how likely they are to
recommend Quillstack, 0-10. action_record_recommendation logs the answer (`recommendation`) and
offers a promoter (9-10) to refer a colleague; the referral form takes the colleague's e-mail
and action_submit_referral logs it (`referral`). Asking is remembered in Redis
(`engage:nps:asked:<customer>`), so no channel, restart or second Rasa server asks again early.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import EngageAction, EngageFormValidation
from actions.clients.eventlog import EventSink
from actions.clients.redis_client import shared_client
from actions.constants import (
    ACTION_ANSWER_FAQ,
    ACTION_RECORD_RECOMMENDATION,
    ACTION_SUBMIT_IDEA,
    ACTION_SUBMIT_LEAD,
    ACTION_SUBMIT_PROBLEM,
    ACTION_SUBMIT_REFERRAL,
    ACTION_THANK,
    DENY,
    RECOMMENDATION_ASKED,
    RECOMMENDATION_SCORE,
    REFER_COLLEAGUE,
    REFERRAL_EMAIL,
    VALIDATE_REFERRAL_FORM,
)
from actions.conversation import latest_text
from actions.linking import email_in
from analytics.customers import CUSTOMER_ID
from analytics.schema import KEY_PREFIX, RECOMMENDATION, REFERRAL

logger = logging.getLogger(__name__)

ASKED_PREFIX = KEY_PREFIX + "nps:asked:"
ASK_EVERY_SECONDS = 90 * 24 * 3600
# The conversation got somewhere: an answer was given or something was submitted this session.
RESOLVING_ACTIONS = frozenset({ACTION_ANSWER_FAQ, ACTION_SUBMIT_IDEA, ACTION_SUBMIT_PROBLEM, ACTION_SUBMIT_LEAD})
# Channels that show 11 buttons well; WhatsApp would turn them into a numbered list of numbers.
BUTTON_CHANNELS = frozenset({"socketio", "portal", "rest", "telegram"})
_SCORE = re.compile(r"(?<![\d.,])(10|[0-9])(?![\d.,%]|\s*(?:k|m|€|\$|£|%)\b)", re.IGNORECASE)

WELCOME = "You're welcome!"
QUESTION = (
    "One quick question, and I'll only ask it now and then: how likely are you to recommend Quillstack "
    "to a friend or colleague? Reply with a number from 0 (not at all) to 10 (extremely likely)."
)
THANKS_PROMOTER = "That means a lot, thank you! Would you like to invite a colleague to try Quillstack?"
THANKS_PASSIVE = "Thank you! If there's one thing that would make it a 10, tell me any time and I'll pass it on."
THANKS_DETRACTOR = (
    "Thank you for being honest. I'm sorry we're not there yet: tell me what's missing or what went wrong, "
    "and I'll pass it to the team, or ask for a person and someone will follow up."
)
NO_SCORE = "No problem. Anything else I can help with?"
REFERRAL_BUTTONS = [
    {"title": "Invite a colleague", "payload": f"/{REFER_COLLEAGUE}"},
    {"title": "No, thanks", "payload": f"/{DENY}"},
]
NOT_AN_EMAIL = "That doesn't look like an e-mail address. Could you type it again, like name@company.com? (Or say \"stop\".)"
OWN_EMAIL = "That's your own address. Whose e-mail should the invitation go to? (Or say \"stop\".)"
REFERRED = "Thank you! We'll send one invitation to {email}, mentioning you. Anything else I can do for you?"


def group_of(score: int) -> str:
    """The usual Net Promoter groups."""
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def score_in(value: Any) -> Optional[int]:
    """A 0-10 score from a button's entity or a typed answer ("I'd say 8"), or None."""
    found = _SCORE.search(str(value if value is not None else ""))
    return int(found.group(1)) if found else None


def _resolved_this_session(tracker: Tracker) -> bool:
    for event in reversed(tracker.events):
        if event.get("event") == "session_started":
            return False
        if event.get("event") == "action" and event.get("name") in RESOLVING_ACTIONS:
            return True
    return False


class ActionThank(EngageAction):
    """You're welcome, and now and then the recommendation question."""

    def __init__(self, client: Any = None, writer: Optional[EventSink] = None) -> None:
        super().__init__(writer)
        self._client = client

    def name(self) -> str:
        return ACTION_THANK

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else shared_client()

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        if not await self._may_ask(tracker):
            dispatcher.utter_message(response="utter_you_are_welcome")
            return []
        channel = str(tracker.get_latest_input_channel() or "")
        buttons = [{"title": str(n), "payload": f'/rate_recommendation{{"{RECOMMENDATION_SCORE}": "{n}"}}'} for n in range(11)]
        dispatcher.utter_message(text=f"{WELCOME} {QUESTION}", buttons=buttons if channel in BUTTON_CHANNELS else [])
        return [SlotSet(RECOMMENDATION_ASKED, True)]

    async def _may_ask(self, tracker: Tracker) -> bool:
        if not CUSTOMER_ID.match(tracker.sender_id or "") or not _resolved_this_session(tracker):
            return False
        try:
            # Set only when not asked within ASK_EVERY_SECONDS: one question per customer, whichever process asks.
            return bool(await self.client.set(ASKED_PREFIX + tracker.sender_id, "1", nx=True, ex=ASK_EVERY_SECONDS))
        except Exception as exc:  # noqa: BLE001 - no question rather than a broken "you're welcome"
            logger.warning("could not check when %s was last asked to recommend us: %s", tracker.sender_id, exc)
            return False


class ActionRecordRecommendation(EngageAction):
    def name(self) -> str:
        return ACTION_RECORD_RECOMMENDATION

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        entity = next(tracker.get_latest_entity_values(RECOMMENDATION_SCORE), None)
        score = score_in(entity) if entity is not None else score_in(latest_text(tracker))
        reset = [SlotSet(RECOMMENDATION_ASKED, False)]
        if score is None:
            dispatcher.utter_message(text=NO_SCORE)
            return reset
        group = group_of(score)
        self.log(tracker, RECOMMENDATION, {"score": score, "group": group, "asked": bool(tracker.get_slot(RECOMMENDATION_ASKED))})
        if group == "promoter":
            dispatcher.utter_message(text=THANKS_PROMOTER, buttons=REFERRAL_BUTTONS)
        else:
            dispatcher.utter_message(text=THANKS_PASSIVE if group == "passive" else THANKS_DETRACTOR)
        return reset


def _own_email(tracker: Tracker, email: str) -> bool:
    return email == str(tracker.get_slot("lead_email") or "").lower()


class ValidateReferralForm(EngageFormValidation):
    def name(self) -> str:
        return VALIDATE_REFERRAL_FORM

    async def validate_referral_email(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        identity = email_in(slot_value)
        if identity is None:
            dispatcher.utter_message(text=NOT_AN_EMAIL)
            return {REFERRAL_EMAIL: None}
        if _own_email(tracker, identity.value):
            dispatcher.utter_message(text=OWN_EMAIL)
            return {REFERRAL_EMAIL: None}
        return {REFERRAL_EMAIL: identity.value}


class ActionSubmitReferral(EngageAction):
    def name(self) -> str:
        return ACTION_SUBMIT_REFERRAL

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        email = tracker.get_slot(REFERRAL_EMAIL)
        if not email:
            dispatcher.utter_message(text=NO_SCORE)
            return [SlotSet(REFERRAL_EMAIL, None)]
        self.log(tracker, REFERRAL, {"referee": email, "domain": email.split("@", 1)[1]})
        dispatcher.utter_message(text=REFERRED.format(email=email))
        return [SlotSet(REFERRAL_EMAIL, None)]
