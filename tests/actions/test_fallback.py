"""action_fallback: rephrase first, offer a person on the second misunderstanding in a row."""

from __future__ import annotations

from rasa_sdk.events import UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher

from actions import fallback
from actions.fallback import ActionFallback, consecutive_fallbacks
from analytics.schema import FALLBACK
from tests.actions.conftest import EventLog, action_event, bot_event, make_tracker, user_event

RANKING = [{"name": "nlu_fallback", "confidence": 0.5}, {"name": "ask_question", "confidence": 0.31}]


def fallback_turn(text: str) -> list:
    # What a reverted fallback leaves in the raw event list.
    return [action_event("action_listen"), user_event(text, "nlu_fallback", 0.5), action_event("action_fallback"), bot_event("Sorry..."), {"event": "rewind"}]


def normal_turn(text: str) -> list:
    return [action_event("action_listen"), user_event(text, "greet"), action_event("utter_greet"), bot_event("Hi!")]


async def test_first_fallback_asks_to_rephrase_reverts_and_logs(event_log: EventLog) -> None:
    tracker = make_tracker("blorp", "nlu_fallback", confidence=0.5, intent_ranking=RANKING, history=normal_turn("hi"))
    dispatcher = CollectingDispatcher()
    events = await ActionFallback(writer=event_log.writer).run(dispatcher, tracker, {})
    assert events == [UserUtteranceReverted()]
    assert dispatcher.messages[0]["response"] == "utter_default"
    (record,) = await event_log.records(FALLBACK)
    assert record.text == "blorp"
    assert record.data == {
        "consecutive": 1,
        "offered_human": False,
        "intent": "nlu_fallback",
        "confidence": 0.5,
        "nearest_intent": {"name": "ask_question", "confidence": 0.31},
    }


async def test_second_fallback_in_a_row_offers_a_person(event_log: EventLog) -> None:
    tracker = make_tracker("zzz", "nlu_fallback", confidence=0.5, history=normal_turn("hi") + fallback_turn("blorp"))
    dispatcher = CollectingDispatcher()
    await ActionFallback(writer=event_log.writer).run(dispatcher, tracker, {})
    (message,) = dispatcher.messages
    assert message["text"] == fallback.OFFER_HUMAN
    assert message["buttons"] == [{"title": "Talk to a person", "payload": "/request_human"}]
    (record,) = await event_log.records(FALLBACK)
    assert record.data["consecutive"] == 2 and record.data["offered_human"] is True


def test_counting_stops_at_an_understood_message_or_a_new_session() -> None:
    assert consecutive_fallbacks(make_tracker("x", history=fallback_turn("a") + normal_turn("hi"))) == 1
    assert consecutive_fallbacks(make_tracker("x", history=fallback_turn("a") + fallback_turn("b"))) == 3
    new_session = fallback_turn("a") + [{"event": "session_started"}]
    assert consecutive_fallbacks(make_tracker("x", history=new_session)) == 1
