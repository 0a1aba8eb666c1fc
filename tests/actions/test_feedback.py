"""action_capture_feedback: the reply follows the sentiment; the record carries sentiment and in-use context."""

from __future__ import annotations

from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import feedback
from actions.feedback import ActionCaptureFeedback
from analytics.schema import FEEDBACK
from tests.actions.conftest import EventLog, action_event, make_tracker, user_event

CONTEXT = {"product": "Docs", "feature": "search", "page": "/docs/handbook", "app_version": "5.2.1", "session": "ignored"}


async def run(event_log: EventLog, text: str, events: tuple = (), **kwargs) -> CollectingDispatcher:
    dispatcher = CollectingDispatcher()
    returned = await ActionCaptureFeedback(writer=event_log.writer).run(dispatcher, make_tracker(text, "give_feedback", **kwargs), {})
    assert returned == list(events)
    return dispatcher


async def test_negative_feedback_gets_an_apology_an_offer_and_a_record_with_context(event_log: EventLog) -> None:
    # The description is kept ready: if they say yes, problem_form asks only where it happened.
    prefill = [SlotSet("problem_description", "search is so slow in Docs")]
    dispatcher = await run(event_log, "search is so slow in Docs", prefill, metadata=CONTEXT, channel="portal")
    (message,) = dispatcher.messages
    assert message["text"] == feedback.SORRY_NEGATIVE
    assert [b["payload"] for b in message["buttons"]] == ["/affirm", "/deny"]
    (record,) = await event_log.records(FEEDBACK)
    assert record.channel == "portal"
    assert record.data["feedback"] == "search is so slow in Docs"
    assert record.data["sentiment"] == "negative" and record.data["sentiment_score"] < 0
    assert record.data["context"] == {"product": "Docs", "feature": "search", "page": "/docs/handbook", "app_version": "5.2.1"}
    assert record.metadata["session"] == "ignored"  # the full metadata stays on the record itself


async def test_vague_negative_feedback_prefills_nothing(event_log: EventLog) -> None:
    dispatcher = await run(event_log, "it's broken 😡")
    assert dispatcher.messages[0]["text"] == feedback.SORRY_NEGATIVE


async def test_positive_feedback_is_thanked(event_log: EventLog) -> None:
    dispatcher = await run(event_log, "the new dashboard is great")
    assert [m["text"] for m in dispatcher.messages] == [feedback.THANKS_POSITIVE]
    (record,) = await event_log.records(FEEDBACK)
    assert record.data["sentiment"] == "positive" and record.data["context"] == {}


async def test_neutral_feedback_is_thanked_plainly(event_log: EventLog) -> None:
    dispatcher = await run(event_log, "the export button moved to the top bar")
    assert [m["text"] for m in dispatcher.messages] == [feedback.THANKS_NEUTRAL]
    assert (await event_log.records(FEEDBACK))[0].data["sentiment"] == "neutral"


async def test_a_button_press_uses_what_the_customer_typed_before(event_log: EventLog) -> None:
    history = [action_event("action_listen"), user_event("the editor keeps freezing", "give_feedback")]
    tracker = make_tracker("/give_feedback", "give_feedback", history=history)
    await ActionCaptureFeedback(writer=event_log.writer).run(CollectingDispatcher(), tracker, {})
    (record,) = await event_log.records(FEEDBACK)
    assert record.data["feedback"] == "the editor keeps freezing"


async def test_nothing_to_capture_asks_for_it(event_log: EventLog) -> None:
    dispatcher = await run(event_log, "/give_feedback")
    assert [m["text"] for m in dispatcher.messages] == [feedback.NOTHING_TO_CAPTURE]
    assert await event_log.records() == []


async def test_very_long_feedback_is_stored_truncated(event_log: EventLog) -> None:
    tracker = make_tracker("slow " * 3000, "give_feedback")
    (prefill,) = await ActionCaptureFeedback(writer=event_log.writer).run(CollectingDispatcher(), tracker, {})
    assert len(prefill["value"]) <= 2000
    (record,) = await event_log.records(FEEDBACK)
    assert len(record.data["feedback"]) <= 4000
