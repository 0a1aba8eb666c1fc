"""Handover triggers the bot raises itself: misses in a row and repeated negative feedback (console/config.yml)."""

from __future__ import annotations

import redis.asyncio as aioredis
from rasa_sdk.executor import CollectingDispatcher

from actions import feedback, handover
from actions.clients.handover import HandoverQueue, request_key
from actions.escalation import misses_in_a_row, negative_in_session
from actions.faq import DONT_KNOW
from actions.feedback import ActionCaptureFeedback
from actions.handover import ActionRequestHandover
from analytics.schema import HANDOVER_REQUESTED
from tests.actions.conftest import EventLog, action_event, bot_event, make_tracker, user_event
from tests.actions.test_handover import someone_there


def turn(text: str, intent: str, *after: dict) -> list:
    return [action_event("action_listen"), user_event(text, intent), *after]


def test_counting_misses_and_unhappy_messages_stops_where_it_should() -> None:
    miss = turn("what's a swallow's airspeed", "ask_question", action_event("action_answer_faq"), bot_event(DONT_KNOW))
    fallback = turn("blorp", "nlu_fallback", action_event("action_fallback"), bot_event("Sorry..."), {"event": "rewind"})
    answered = turn("how do I invite people", "ask_question", action_event("action_answer_faq"), bot_event("Settings > Members."))
    assert misses_in_a_row(make_tracker("x", history=miss + fallback), DONT_KNOW) == 3
    assert misses_in_a_row(make_tracker("x", history=miss + answered), DONT_KNOW) == 1
    assert misses_in_a_row(make_tracker("x", history=miss + [{"event": "session_started"}]), DONT_KNOW) == 1
    unhappy = turn("the editor is awful", "give_feedback", action_event("action_capture_feedback"), bot_event(feedback.SORRY_NEGATIVE))
    assert negative_in_session(make_tracker("x", history=unhappy + answered), feedback.SORRY_NEGATIVE) == 2
    assert negative_in_session(make_tracker("x", history=unhappy + [{"event": "session_started"}]), feedback.SORRY_NEGATIVE) == 1


async def test_a_second_unhappy_message_brings_in_a_person(event_log: EventLog, redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    requester = lambda: ActionRequestHandover(queue=HandoverQueue(client), writer=event_log.writer, availability=someone_there)  # noqa: E731
    action = ActionCaptureFeedback(writer=event_log.writer, requester=requester)
    dispatcher = CollectingDispatcher()
    await action.run(dispatcher, make_tracker("the export is terrible and broken", "give_feedback", sender_id="conv-neg"), {})
    assert [m["text"] for m in dispatcher.messages] == [feedback.SORRY_NEGATIVE]
    history = turn("the export is terrible and broken", "give_feedback", action_event("action_capture_feedback"), bot_event(feedback.SORRY_NEGATIVE))
    dispatcher = CollectingDispatcher()
    await action.run(dispatcher, make_tracker("still awful, nothing works", "give_feedback", sender_id="conv-neg", history=history), {})
    assert [m["text"] for m in dispatcher.messages] == [feedback.SORRY_NEGATIVE, handover.QUEUED]
    assert await client.hget(request_key("conv-neg"), "trigger") == "negative_feedback"
    (requested,) = await event_log.records(HANDOVER_REQUESTED)
    assert requested.data["trigger"] == "negative_feedback"
    await client.aclose()
