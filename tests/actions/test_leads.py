"""The sales form: validation through the real FormValidationAction, the lead record, corrections."""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.constants import LEAD_BUDGET, LEAD_EMAIL, LEAD_NAME, LEAD_SLOTS, LEAD_TIMELINE, SALES_FORM
from actions.leads import ActionAskLeadBudget, ActionCorrectLead, ActionSubmitLead, ValidateSalesForm
from analytics.schema import LEAD_FIELD_CAPTURED, LEAD_SUBMITTED
from tests.actions.conftest import EventLog, entity, make_tracker, slot_event, user_event

DOMAIN = {"forms": {SALES_FORM: {"required_slots": list(LEAD_SLOTS)}}, "slots": {}}
LEAD = {
    "lead_name": "Maria Lopez",
    "lead_email": "maria@acme.io",
    "lead_company": "Acme Logistics",
    "lead_role": "Head of Operations",
    "lead_need": "an internal wiki with SSO",
    "lead_timeline": "Within 3 months",
    "lead_budget": "$5k–$25k / year",
}


async def validate(
    event_log: EventLog, candidates: Dict[str, Any], requested: Optional[str], slots: Optional[Dict[str, Any]] = None
) -> tuple[List[Dict[str, Any]], List[str]]:
    text = str(next(iter(candidates.values())))
    tracker = make_tracker(text, "inform", slots={**(slots or {}), "requested_slot": requested}, slot_candidates=candidates, active_loop=SALES_FORM)
    dispatcher = CollectingDispatcher()
    events = await ValidateSalesForm(writer=event_log.writer, today=lambda: date(2025, 11, 22)).run(dispatcher, tracker, DOMAIN)
    return events, [m["text"] for m in dispatcher.messages]


async def test_an_accepted_answer_is_stored_and_captured_once(event_log: EventLog) -> None:
    events, messages = await validate(event_log, {LEAD_EMAIL: "it's Maria@Acme.IO"}, requested=LEAD_EMAIL)
    assert events == [SlotSet(LEAD_EMAIL, "Maria@acme.io")] and messages == []
    (record,) = await event_log.records(LEAD_FIELD_CAPTURED)
    assert record.data == {"field": LEAD_EMAIL, "value": "Maria@acme.io", "raw": "it's Maria@Acme.IO"}


async def test_an_invalid_answer_is_re_asked_helpfully_and_not_captured(event_log: EventLog) -> None:
    events, messages = await validate(event_log, {LEAD_EMAIL: "maria at acme"}, requested=LEAD_EMAIL)
    assert events == [SlotSet(LEAD_EMAIL, None)]
    (message,) = messages
    assert "needs an @" in message and "maria.lopez@company.com" in message
    assert await event_log.records() == []


async def test_a_one_letter_name_is_re_asked(event_log: EventLog) -> None:
    events, messages = await validate(event_log, {LEAD_NAME: "M"}, requested=LEAD_NAME)
    assert events == [SlotSet(LEAD_NAME, None)] and "short for a name" in messages[0]


@pytest.mark.parametrize(
    "slot, raw, bucket",
    [(LEAD_TIMELINE, "next month", "Within 3 months"), (LEAD_TIMELINE, "Within a month", "Within a month"), (LEAD_BUDGET, "about 10k", "$5k–$25k / year"), (LEAD_BUDGET, "Not sure yet", "Not sure yet")],
)
async def test_free_text_is_normalised_to_the_buttons(event_log: EventLog, slot: str, raw: str, bucket: str) -> None:
    events, messages = await validate(event_log, {slot: raw}, requested=slot)
    assert events == [SlotSet(slot, bucket)] and messages == []
    (record,) = await event_log.records(LEAD_FIELD_CAPTURED)
    assert record.data["value"] == bucket


@pytest.mark.parametrize("slot, raw", [(LEAD_TIMELINE, "whenever the stars align"), (LEAD_BUDGET, "a reasonable amount")])
async def test_unplaceable_timeline_or_budget_is_re_asked(event_log: EventLog, slot: str, raw: str) -> None:
    events, messages = await validate(event_log, {slot: raw}, requested=slot)
    assert events == [SlotSet(slot, None)]
    assert "pick the closest option" in messages[0]


async def test_a_budget_range_across_buckets_is_asked_about_and_kept_in_the_customers_words(event_log: EventLog) -> None:
    events, messages = await validate(event_log, {LEAD_BUDGET: "10k-50k"}, requested=LEAD_BUDGET)
    assert events == [SlotSet(LEAD_BUDGET, None)] and messages == []  # nothing stored that contradicts them
    assert await event_log.records() == []

    # The form then asks which bucket is closer, offering only the two the range spans.
    asked = make_tracker("10k-50k", "inform", slots={"requested_slot": LEAD_BUDGET}, active_loop=SALES_FORM)
    dispatcher = CollectingDispatcher()
    await ActionAskLeadBudget().run(dispatcher, asked, DOMAIN)
    (question,) = dispatcher.messages
    assert "10k-50k" in question["text"] and "Which is closer" in question["text"]
    assert [b["payload"] for b in question["buttons"]] == ["$5k–$25k / year", "$25k–$100k / year"]

    # The pick is stored, and the log keeps what they first said beside it.
    history = [user_event("10k-50k", "inform"), slot_event(LEAD_BUDGET, None)]
    tracker = make_tracker("$25k–$100k / year", "inform", slots={"requested_slot": LEAD_BUDGET}, slot_candidates={LEAD_BUDGET: "$25k–$100k / year"}, active_loop=SALES_FORM, history=history)
    events = await ValidateSalesForm(writer=event_log.writer).run(CollectingDispatcher(), tracker, DOMAIN)
    assert events == [SlotSet(LEAD_BUDGET, "$25k–$100k / year")]
    (record,) = await event_log.records(LEAD_FIELD_CAPTURED)
    assert record.data == {"field": LEAD_BUDGET, "value": "$25k–$100k / year", "raw": "10k-50k"}


async def test_the_first_budget_question_is_the_usual_one() -> None:
    tracker = make_tracker("an internal wiki", "inform", slots={"requested_slot": "lead_need"}, active_loop=SALES_FORM)
    dispatcher = CollectingDispatcher()
    await ActionAskLeadBudget().run(dispatcher, tracker, DOMAIN)
    assert [m["response"] for m in dispatcher.messages] == ["utter_ask_lead_budget"]


async def test_revalidation_when_the_form_reopens_captures_nothing(event_log: EventLog) -> None:
    # When sales_form is activated with slots already filled, Rasa validates them with no requested slot.
    filled = {k: v for k, v in LEAD.items() if k != LEAD_EMAIL}
    events, messages = await validate(event_log, filled, requested=None)
    assert {e["name"]: e["value"] for e in events} == filled and messages == []
    assert await event_log.records() == []


async def test_submit_logs_the_lead_confirms_and_resets(event_log: EventLog) -> None:
    tracker = make_tracker("yes", "affirm", slots=LEAD, metadata={"page": "/pricing"}, sender_id="lead-1")
    dispatcher = CollectingDispatcher()
    events = await ActionSubmitLead(writer=event_log.writer).run(dispatcher, tracker, {})
    assert events == [SlotSet(slot, None) for slot in LEAD_SLOTS]
    text = dispatcher.messages[0]["text"]
    reference = re.search(r"LEAD-[0-9A-F]{6}", text).group(0)
    assert "Maria Lopez" in text and "maria@acme.io" in text
    (record,) = await event_log.records(LEAD_SUBMITTED)
    assert record.conversation_id == "lead-1"
    assert record.data["reference"] == reference
    assert record.data["lead"] == {k.replace("lead_", ""): v for k, v in LEAD.items()}
    assert record.data["context"] == {"page": "/pricing"}


async def test_submit_with_missing_fields_reopens_the_form(event_log: EventLog) -> None:
    slots = {k: v for k, v in LEAD.items() if k not in (LEAD_EMAIL, LEAD_BUDGET)}
    dispatcher = CollectingDispatcher()
    events = await ActionSubmitLead(writer=event_log.writer).run(dispatcher, make_tracker("yes", "affirm", slots=slots), {})
    assert events == [ActiveLoop(SALES_FORM)]
    assert "e-mail, budget" in dispatcher.messages[0]["text"]
    assert await event_log.records() == []


@pytest.mark.parametrize("said", ["lead_email", "e-mail", "mail"])
async def test_correcting_a_named_field_clears_it_and_reopens_the_form(said: str) -> None:
    tracker = make_tracker("I need to change my email", "correct_field", entities=[entity("field", said)], slots=LEAD)
    dispatcher = CollectingDispatcher()
    events = await ActionCorrectLead().run(dispatcher, tracker, {})
    assert events == [SlotSet(LEAD_EMAIL, None), ActiveLoop(SALES_FORM)]
    assert "e-mail" in dispatcher.messages[0]["text"]


@pytest.mark.parametrize(
    "said, field, slot, value",
    [
        ("actually my e-mail is dana@northbeam.io", "e-mail", LEAD_EMAIL, "dana@northbeam.io"),
        ("change the company to Northbeam Logistics please", "company", "lead_company", "Northbeam Logistics"),
        ("the timeline should be within 3 months", "timeline", LEAD_TIMELINE, "Within 3 months"),
    ],
)
async def test_a_correction_that_carries_the_new_value_takes_it(event_log: EventLog, said: str, field: str, slot: str, value: str) -> None:
    start = said.index(field)
    found = {**entity("field", field), "start": start, "end": start + len(field)}
    tracker = make_tracker(said, "correct_field", entities=[found], slots=LEAD)
    dispatcher = CollectingDispatcher()
    events = await ActionCorrectLead(writer=event_log.writer, today=lambda: date(2025, 11, 22)).run(dispatcher, tracker, DOMAIN)
    assert events == [SlotSet(slot, value), ActiveLoop(SALES_FORM)]  # the form goes straight back to the confirmation
    assert value in dispatcher.messages[0]["text"]
    (record,) = await event_log.records(LEAD_FIELD_CAPTURED)
    assert record.data["field"] == slot and record.data["value"] == value and record.data["correction"] is True


async def test_a_correction_whose_new_value_fails_the_check_asks_again(event_log: EventLog) -> None:
    said = "actually my email is dana at northbeam"
    found = {**entity("field", "email"), "start": said.index("email"), "end": said.index("email") + 5}
    events = await ActionCorrectLead(writer=event_log.writer).run(CollectingDispatcher(), make_tracker(said, "correct_field", entities=[found], slots=LEAD), DOMAIN)
    assert events == [SlotSet(LEAD_EMAIL, None), ActiveLoop(SALES_FORM)]
    assert await event_log.records() == []


async def test_correcting_without_a_known_field_asks_which() -> None:
    tracker = make_tracker("I made a mistake", "correct_field", entities=[entity("field", "shoe size")], slots=LEAD)
    dispatcher = CollectingDispatcher()
    assert await ActionCorrectLead().run(dispatcher, tracker, {}) == []
    assert dispatcher.messages[0]["response"] == "utter_ask_field_to_correct"
