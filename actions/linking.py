"""Linking an e-mail to the customer: validate_link_form sends and checks a one-time code,
action_link_account links the confirmed address (analytics.customers), so the customer's
other channels (the portal, a later web chat) continue the same conversation.

The conversation id is the customer id on the web chat, WhatsApp, Telegram and the portal;
on the REST test channel there is no customer to link to, and the form says so.
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
from actions.clients.mailer import Mailer, load_mailer
from actions.clients.otp import CodeCheck, OneTimeCodes
from actions.clients.redis_client import shared_client
from actions.constants import ACTION_LINK_ACCOUNT, LINK_CODE, LINK_EMAIL, LINK_SLOTS, VALIDATE_LINK_FORM
from analytics.customers import CUSTOMER_ID, EMAIL, EVIDENCE, CustomerDirectory, Identity, IdentityError
from analytics.schema import IDENTITY_LINKED

logger = logging.getLogger(__name__)

EMAIL_PATTERN = re.compile(r"[^@\s<>(),;:\"']{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")
VERIFIED = "verified"

NOT_AN_EMAIL = "That doesn't look like an e-mail address. Could you type it again, like name@company.com?"
NOT_HERE = (
    "I can confirm your e-mail in the web chat, WhatsApp, Telegram or the customer portal, but not on this "
    "channel. Say \"stop\" to leave this."
)
CODE_SUBJECT = "Your Quillstack confirmation code"
CODE_BODY = "Your code is {code}. It expires in {minutes} minutes. If you didn't ask for it, ignore this e-mail."
WRONG_CODE = "That code doesn't match. Please check the e-mail and try again ({tries} tries left)."
START_AGAIN = "That code has expired or was tried too often. Let's start again."
LINKED = (
    "Thanks, {email} is confirmed. Wherever you write to us with it (the portal, the web chat), "
    "I'll remember our conversation."
)
NOT_LINKED = "Sorry, I couldn't confirm that e-mail address. You can try again any time by saying \"link my account\"."


def email_in(text: Any) -> Optional[Identity]:
    """The e-mail address in what the customer typed ("it's Dana@Acme.example"), normalised, or None."""
    found = EMAIL_PATTERN.search(str(text or ""))
    try:
        return Identity.of(EMAIL, found.group(0)) if found else None
    except IdentityError:
        return None


def _codes() -> OneTimeCodes:
    return OneTimeCodes(shared_client())


class ValidateLinkForm(EngageFormValidation):
    """Asks for the e-mail, sends a code to it, and checks the code the customer types back."""

    def __init__(self, codes: Optional[OneTimeCodes] = None, mailer: Optional[Mailer] = None, writer: Optional[EventSink] = None) -> None:
        super().__init__(writer)
        self._codes = codes
        self._mailer = mailer

    def name(self) -> str:
        return VALIDATE_LINK_FORM

    @property
    def codes(self) -> OneTimeCodes:
        return self._codes if self._codes is not None else _codes()

    @property
    def mailer(self) -> Mailer:
        if self._mailer is None:
            self._mailer = load_mailer()
        return self._mailer

    async def validate_link_email(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        if not CUSTOMER_ID.match(tracker.sender_id or ""):
            dispatcher.utter_message(text=NOT_HERE)
            return {LINK_EMAIL: None}
        identity = email_in(slot_value)
        if identity is None:
            dispatcher.utter_message(text=NOT_AN_EMAIL)
            return {LINK_EMAIL: None}
        code = await self.codes.issue(tracker.sender_id, identity.value)
        minutes = self.codes.ttl_seconds // 60
        await self.mailer.send(identity.value, CODE_SUBJECT, CODE_BODY.format(code=code, minutes=minutes))
        return {LINK_EMAIL: identity.value}

    async def validate_link_code(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        typed = re.sub(r"\D", "", str(slot_value or ""))
        result = await self.codes.check(tracker.sender_id, typed)
        if result.outcome is CodeCheck.VERIFIED and result.email == tracker.get_slot(LINK_EMAIL):
            return {LINK_CODE: VERIFIED}
        if result.outcome is CodeCheck.WRONG:
            dispatcher.utter_message(text=WRONG_CODE.format(tries=result.tries_left))
            return {LINK_CODE: None}
        dispatcher.utter_message(text=START_AGAIN)
        return {LINK_EMAIL: None, LINK_CODE: None}


class ActionLinkAccount(EngageAction):
    """Links the confirmed e-mail to this customer; a customer who already had it merges into this one.

    The slots say which address the form was about, never that it was confirmed: only the
    proof that validate_link_form left in Redis on a right code does (taken once here).
    """

    def __init__(
        self,
        directory: Optional[CustomerDirectory] = None,
        writer: Optional[EventSink] = None,
        codes: Optional[OneTimeCodes] = None,
    ) -> None:
        super().__init__(writer)
        self._directory = directory
        self._codes = codes

    def name(self) -> str:
        return ACTION_LINK_ACCOUNT

    @property
    def directory(self) -> CustomerDirectory:
        return self._directory if self._directory is not None else CustomerDirectory(shared_client())

    @property
    def codes(self) -> OneTimeCodes:
        return self._codes if self._codes is not None else _codes()

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        email = tracker.get_slot(LINK_EMAIL)
        reset = [SlotSet(slot, None) for slot in LINK_SLOTS]
        try:
            identity = Identity.of(EMAIL, str(email or ""))
        except IdentityError:
            identity = None
        proven = (
            identity is not None
            and tracker.get_slot(LINK_CODE) == VERIFIED
            and CUSTOMER_ID.match(tracker.sender_id or "") is not None
            and await self.codes.consume_proof(tracker.sender_id, identity.value)
        )
        if identity is None or not proven:
            logger.warning("conversation %s: no link proof for the address in the form; nothing linked", tracker.sender_id)
            dispatcher.utter_message(text=NOT_LINKED)
            return reset
        resolution = await self.directory.link(tracker.sender_id, identity, EVIDENCE[EMAIL])
        self.log(tracker, IDENTITY_LINKED, {"identity": str(identity), "evidence": EVIDENCE[EMAIL], "merged_from": list(resolution.merged_from)})
        dispatcher.utter_message(text=LINKED.format(email=email))
        return reset
