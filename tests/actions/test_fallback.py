"""action_fallback: rephrase first, offer a person on the second misunderstanding in a row."""

from __future__ import annotations

from rasa_sdk.events import UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher

from pathlib import Path

import pytest
import redis.asyncio as aioredis

from actions import fallback, handover
from actions.clients.handover import HandoverQueue, request_key
from actions.faq import DONT_KNOW
from actions.handover import ActionRequestHandover
from analytics.schema import HANDOVER_REQUESTED
from tests.actions.test_handover import someone_there
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
        "handed_over": False,
    }


async def test_second_miss_in_a_row_brings_in_a_person(event_log: EventLog, redis_url: str) -> None:
    # console/config.yml: triggers.misses_in_a_row 2 (a fallback after an "I don't know" counts too)
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    requester = lambda: ActionRequestHandover(queue=HandoverQueue(client), writer=event_log.writer, availability=someone_there)  # noqa: E731
    dont_know = [action_event("action_listen"), user_event("what is the airspeed of a swallow", "ask_question"),
                 action_event("action_answer_faq"), bot_event(DONT_KNOW)]
    tracker = make_tracker("zzz", "nlu_fallback", confidence=0.5, history=normal_turn("hi") + dont_know, sender_id="conv-miss")
    dispatcher = CollectingDispatcher()
    await ActionFallback(writer=event_log.writer, requester=requester).run(dispatcher, tracker, {})
    assert [m["text"] for m in dispatcher.messages] == [fallback.STILL_LOST, handover.QUEUED]
    assert await client.hget(request_key("conv-miss"), "trigger") == "misses"
    (record,) = await event_log.records(FALLBACK)
    assert record.data["handed_over"] is True
    (requested,) = await event_log.records(HANDOVER_REQUESTED)
    assert requested.data["trigger"] == "misses"
    await client.aclose()


async def test_with_the_trigger_off_the_second_fallback_offers_a_person(event_log: EventLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = tmp_path / "console.yml"
    settings.write_text("triggers:\n  misses_in_a_row: 0\n")
    monkeypatch.setenv("ENGAGE_CONSOLE_CONFIG", str(settings))
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
