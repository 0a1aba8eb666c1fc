"""handover_contact_form: an e-mail address or phone number for the ticket, kept on the waiting request."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import handover_contact
from actions.clients.handover import HandoverQueue, HandoverRequest, request_key
from actions.handover_contact import ActionSaveHandoverContact, ValidateHandoverContactForm, contact_in
from analytics.schema import HANDOVER_CONTACT
from tests.actions.conftest import EventLog, make_tracker


@pytest.mark.parametrize("typed, expected", [
    ("dana@acme.example", "dana@acme.example"),
    ("sure, it's Dana.Fox@Acme.Example thanks", "dana.fox@acme.example"),
    ("+49 151 2345 6789", "+4915123456789"),
    ("call 0151/234-5678", "01512345678"),
    ("skip", None),
    ("123", None),
    ("<script>alert(1)</script>", None),
])
def test_what_counts_as_a_contact(typed: str, expected: Any) -> None:
    assert contact_in(typed) == expected


async def test_the_form_takes_a_contact_or_settles_for_the_chat() -> None:
    validator = ValidateHandoverContactForm()
    dispatcher = CollectingDispatcher()
    assert await validator.validate_handover_contact("mail me at dana@acme.example", dispatcher, make_tracker("x"), {}) == {"handover_contact": "dana@acme.example"}
    assert await validator.validate_handover_contact("no thanks", dispatcher, make_tracker("x"), {}) == {"handover_contact": "none"}


async def test_the_contact_is_kept_on_the_waiting_request(client: Any, event_log: EventLog) -> None:
    await HandoverQueue(client).enqueue(HandoverRequest("conv-c", "socketio", "a person please", 5.0, ticket=True))
    action = ActionSaveHandoverContact(client=client, writer=event_log.writer)
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("dana@acme.example", "inform", sender_id="conv-c", slots={"handover_contact": "dana@acme.example"})
    assert await action.run(dispatcher, tracker, {}) == [SlotSet("handover_contact", None)]
    assert await client.hget(request_key("conv-c"), "contact") == "dana@acme.example"
    assert dispatcher.messages[0]["text"] == handover_contact.SAVED.format(contact="dana@acme.example")
    (record,) = await event_log.records(HANDOVER_CONTACT)
    assert record.data == {"kind": "email"} and "dana" not in str(record.data)
    dispatcher = CollectingDispatcher()
    await action.run(dispatcher, make_tracker("skip", sender_id="conv-c", slots={"handover_contact": "none"}), {})
    assert dispatcher.messages[0]["text"] == handover_contact.CHAT_ONLY
