"""No one is available: ask how to reach the customer (handover_contact_form), and keep it with the ticket.

action_request_handover starts the form when it opens a ticket and knows no verified e-mail. The
answer is an e-mail address or a phone number; anything else (or "skip") means "reply here in the
chat". It is stored on the waiting request (`contact`, shown in the console's packet) and logged
as `handover_contact` (the value only in the request, the kind in the log).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import EngageAction, EngageFormValidation
from actions.clients.redis_client import shared_client
from actions.constants import ACTION_SAVE_HANDOVER_CONTACT, HANDOVER_CONTACT, VALIDATE_HANDOVER_CONTACT_FORM
from actions.linking import email_in
from analytics.schema import HANDOVER_CONTACT as HANDOVER_CONTACT_EVENT
from analytics.schema import handover_request_key

NONE = "none"
PHONE = re.compile(r"(?<![\w+])\+?\d[\d ()./-]{5,20}\d(?!\w)")
SAVED = "Thanks! If we can't reply here, we'll reach you at {contact}."
CHAT_ONLY = "No problem: we'll reply right here in the chat."


def contact_in(text: Any) -> Optional[str]:
    """An e-mail address or a phone number (digits, with a leading + kept) in what was typed, else None."""
    email = email_in(text)
    if email is not None:
        return email.value
    found = PHONE.search(str(text or ""))
    if found is None:
        return None
    digits = re.sub(r"\D", "", found.group(0))
    if not 7 <= len(digits) <= 15:
        return None
    return ("+" if found.group(0).startswith("+") else "") + digits


class ValidateHandoverContactForm(EngageFormValidation):
    def name(self) -> str:
        return VALIDATE_HANDOVER_CONTACT_FORM

    async def validate_handover_contact(self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> Dict[str, Any]:
        return {HANDOVER_CONTACT: contact_in(slot_value) or NONE}


class ActionSaveHandoverContact(EngageAction):
    def __init__(self, client: Any = None, writer: Any = None) -> None:
        super().__init__(writer)
        self._client = client

    def name(self) -> str:
        return ACTION_SAVE_HANDOVER_CONTACT

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        contact = str(tracker.get_slot(HANDOVER_CONTACT) or NONE)
        if contact == NONE:
            dispatcher.utter_message(text=CHAT_ONLY)
            return [SlotSet(HANDOVER_CONTACT, None)]
        client = self._client if self._client is not None else shared_client()
        key = handover_request_key(str(tracker.sender_id))
        if await client.exists(key):  # only while the request waits (an agent may have taken it meanwhile)
            await client.hset(key, "contact", contact)
        self.log(tracker, HANDOVER_CONTACT_EVENT, {"kind": "email" if "@" in contact else "phone"})
        dispatcher.utter_message(text=SAVED.format(contact=contact))
        return [SlotSet(HANDOVER_CONTACT, None)]
