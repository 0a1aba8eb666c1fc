"""The sales form: validate_sales_form, action_ask_lead_budget, action_submit_lead and action_correct_lead."""

from __future__ import annotations

from datetime import date
from typing import Any, Callable, Dict, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import REQUESTED_SLOT
from rasa_sdk.types import DomainDict

from actions.base import EngageAction, EngageFormValidation
from actions.clients.eventlog import EventSink
from actions.constants import (
    ACTION_ASK_LEAD_BUDGET,
    ACTION_CORRECT_LEAD,
    ACTION_SUBMIT_LEAD,
    FIELD,
    LEAD_BUDGET,
    LEAD_COMPANY,
    LEAD_EMAIL,
    LEAD_NAME,
    LEAD_NEED,
    LEAD_ROLE,
    LEAD_SLOTS,
    LEAD_TIMELINE,
    SALES_FORM,
    VALIDATE_SALES_FORM,
)
from actions.conversation import in_use_context, truncate
from actions.references import reference
from actions.lead_fields import (
    BUDGET_BUCKETS,
    BUDGET_REASK,
    Checked,
    budget_buckets,
    check_field,
    check_timeline,
    check_company,
    check_email,
    check_name,
    check_need,
    check_role,
    new_value_in,
    resolve_field,
)
from analytics.schema import LEAD_FIELD_CAPTURED, LEAD_SUBMITTED

FIELD_LABELS = {
    LEAD_NAME: "name",
    LEAD_EMAIL: "e-mail",
    LEAD_COMPANY: "company",
    LEAD_ROLE: "role",
    LEAD_NEED: "what you need",
    LEAD_TIMELINE: "timeline",
    LEAD_BUDGET: "budget",
}
ASK_FIELD_TO_CORRECT = "utter_ask_field_to_correct"
ASK_LEAD_BUDGET = "utter_ask_lead_budget"
MAX_RAW = 300


class ValidateSalesForm(EngageFormValidation):
    """Checks each answer, re-asks helpfully, logs one `lead_field_captured` per accepted answer."""

    def __init__(self, writer: Optional[EventSink] = None, today: Callable[[], date] = date.today) -> None:
        super().__init__(writer)
        self._today = today

    def name(self) -> str:
        return VALIDATE_SALES_FORM

    def _accept(
        self, slot: str, raw: Any, checked: Checked, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> Dict[str, Any]:
        """Store `checked.value`, logging the customer's own words (`raw`) beside it when they differ."""
        if not checked.ok:
            dispatcher.utter_message(text=checked.reask)
            return {slot: None}
        # Only the answer to the question just asked is a capture: when the form is
        # activated with slots already filled, Rasa validates those again (no requested slot).
        if tracker.get_slot(REQUESTED_SLOT) == slot:
            self.log(tracker, LEAD_FIELD_CAPTURED, captured(slot, checked.value, raw))
        return {slot: checked.value}

    async def validate_lead_name(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> Dict[str, Any]:
        return self._accept(LEAD_NAME, value, check_name(value), dispatcher, tracker)

    async def validate_lead_email(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> Dict[str, Any]:
        return self._accept(LEAD_EMAIL, value, check_email(value), dispatcher, tracker)

    async def validate_lead_company(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> Dict[str, Any]:
        return self._accept(LEAD_COMPANY, value, check_company(value), dispatcher, tracker)

    async def validate_lead_role(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> Dict[str, Any]:
        return self._accept(LEAD_ROLE, value, check_role(value), dispatcher, tracker)

    async def validate_lead_need(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> Dict[str, Any]:
        return self._accept(LEAD_NEED, value, check_need(value), dispatcher, tracker)

    async def validate_lead_timeline(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> Dict[str, Any]:
        return self._accept(LEAD_TIMELINE, value, check_timeline(value, self._today()), dispatcher, tracker)

    async def validate_lead_budget(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> Dict[str, Any]:
        buckets = budget_buckets(value)
        if len(buckets) > 1:
            return {LEAD_BUDGET: None}  # a range across buckets: action_ask_lead_budget asks which is closer
        checked = Checked(value=buckets[0]) if buckets else Checked(reask=BUDGET_REASK)
        return self._accept(LEAD_BUDGET, _clarified_range(tracker, value) or value, checked, dispatcher, tracker)


def captured(slot: str, value: str, said: Any) -> Dict[str, Any]:
    """A `lead_field_captured` record: the stored value, and the customer's own words when they differ."""
    data: Dict[str, Any] = {"field": slot, "value": value}
    words = " ".join(str(said).split())
    if words != value:
        data["raw"] = truncate(words, MAX_RAW)
    return data


def _clarified_range(tracker: Tracker, value: Any) -> Optional[str]:
    """The range this bucket was picked from ("10k-50k"), when the customer's previous answer
    spanned buckets and this one chose among them: those are the words to keep."""
    if value not in BUDGET_BUCKETS:
        return None
    events = tracker.events
    user_turns = [i for i, event in enumerate(events) if event.get("event") == "user"]
    if len(user_turns) < 2:
        return None
    earlier = user_turns[-2]
    text = events[earlier].get("text") or ""
    refused = any(
        event.get("event") == "slot" and event.get("name") == LEAD_BUDGET and event.get("value") is None
        for event in events[earlier + 1 : user_turns[-1]]
    )
    spanned = budget_buckets(text)
    return text if refused and len(spanned) > 1 and value in spanned else None


class ActionAskLeadBudget(EngageAction):
    """Ask for the budget; after an answer that spans buckets ("10k-50k"), ask which of those is closer
    rather than store one that contradicts what the customer said."""

    def name(self) -> str:
        return ACTION_ASK_LEAD_BUDGET

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        said = tracker.latest_message.get("text") or ""
        spanned = budget_buckets(said) if tracker.get_slot(REQUESTED_SLOT) == LEAD_BUDGET else ()
        if len(spanned) < 2:
            dispatcher.utter_message(response=ASK_LEAD_BUDGET)
            return []
        choices = " or ".join(spanned) if len(spanned) == 2 else ", ".join(spanned[:-1]) + " or " + spanned[-1]
        dispatcher.utter_message(
            text=f"\"{truncate(' '.join(said.split()), 60)}\" covers more than one of our ranges. Which is closer: {choices}?",
            buttons=[{"title": bucket, "payload": bucket} for bucket in spanned],
        )
        return []


class ActionSubmitLead(EngageAction):
    def name(self) -> str:
        return ACTION_SUBMIT_LEAD

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        lead = {slot: tracker.get_slot(slot) for slot in LEAD_SLOTS}
        missing = [slot for slot, value in lead.items() if not value]
        if missing:
            labels = ", ".join(FIELD_LABELS[slot] for slot in missing)
            dispatcher.utter_message(text=f"Before I send this to our sales team I still need your {labels}.")
            return [ActiveLoop(SALES_FORM)]
        ref = reference("LEAD")
        self.log(
            tracker,
            LEAD_SUBMITTED,
            {"reference": ref, "lead": {slot.replace("lead_", ""): value for slot, value in lead.items()}, "context": in_use_context(tracker)},
        )
        dispatcher.utter_message(
            text=(
                f"Thank you, {lead[LEAD_NAME]}! I've sent your details to our sales team; "
                f"they'll get in touch at {lead[LEAD_EMAIL]}. Your reference is {ref}."
            )
        )
        return [SlotSet(slot, None) for slot in LEAD_SLOTS]


class ActionCorrectLead(EngageAction):
    """Take the new value when the correction carries one; otherwise clear the field the customer
    wants to change and reopen the form, which asks only for it.

    The form is reopened with an ActiveLoop event (as bot/data/rules.yml expects): Rasa
    then runs sales_form as an active loop, which requests the one empty slot without
    re-validating the others.
    """

    def __init__(self, writer: Optional[EventSink] = None, today: Callable[[], date] = date.today) -> None:
        super().__init__(writer)
        self._today = today

    def name(self) -> str:
        return ACTION_CORRECT_LEAD

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        slot, mention = None, None
        for value in tracker.get_latest_entity_values(FIELD):
            slot = resolve_field(value)
            if slot:
                break
        if slot is None:
            dispatcher.utter_message(response=ASK_FIELD_TO_CORRECT)
            return []
        text = tracker.latest_message.get("text") or ""
        for found in tracker.latest_message.get("entities") or []:
            if found.get("entity") == FIELD and resolve_field(found.get("value")) == slot and "start" in found:
                mention = text[found["start"] : found["end"]]
                break
        given = new_value_in(text, slot, mention)
        checked = check_field(slot, given, self._today()) if given else None
        if checked is not None and checked.ok:
            # The correction carries the new value ("actually my e-mail is ..."): take it, log it as
            # the customer's answer, and let the form go straight back to the confirmation.
            self.log(tracker, LEAD_FIELD_CAPTURED, {**captured(slot, checked.value, given), "correction": True})
            dispatcher.utter_message(text=f"Done: your {FIELD_LABELS[slot]} is now {checked.value}.")
            return [SlotSet(slot, checked.value), ActiveLoop(SALES_FORM)]
        dispatcher.utter_message(text=f"No problem, let's change your {FIELD_LABELS[slot]}.")
        return [SlotSet(slot, None), ActiveLoop(SALES_FORM)]
