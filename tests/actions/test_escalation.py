"""Handover triggers the bot raises itself: misses in a row and repeated negative feedback (console/config.yml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
import redis.asyncio as aioredis
from rasa_sdk.events import ActiveLoop, UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher

from actions import faq, fallback, feedback, handover, handover_contact
from actions.clients.handover import HandoverQueue, request_key
from actions.escalation import misses_in_a_row, negative_in_session
from actions.faq import DONT_KNOW, ActionAnswerFaq
from actions.fallback import ActionFallback
from actions.feedback import ActionCaptureFeedback
from actions.handover import ActionRequestHandover
from actions.handover_contact import ActionSaveHandoverContact, ValidateHandoverContactForm
from analytics.customers import CustomerDirectory, Identity
from analytics.schema import HANDOVER_CONTACT, HANDOVER_REQUESTED, PROBLEM
from knowledge_base.service import KnowledgeBaseProvider
from tests.actions.conftest import EventLog, action_event, bot_event, make_tracker, user_event
from tests.actions.test_handover import someone_there
from tests.knowledge_base.helpers import BagOfWordsEncoder, write_sample_kb


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
    # A person takes it from here: no "report it as a problem?" beside the handover.
    assert [m["text"] for m in dispatcher.messages] == [feedback.SORRY_HANDED_OVER, handover.QUEUED]
    assert await client.hget(request_key("conv-neg"), "trigger") == "negative_feedback"
    (requested,) = await event_log.records(HANDOVER_REQUESTED)
    assert requested.data["trigger"] == "negative_feedback"
    await client.aclose()


async def back_on_monday(team: str, now: float) -> str:
    return "on Monday at 08:00 (Europe/Berlin)"


def out_of_hours(client: Any, event_log: EventLog) -> Callable[[], ActionRequestHandover]:
    return lambda: ActionRequestHandover(queue=HandoverQueue(client), writer=event_log.writer, availability=back_on_monday)


async def leave_contact(client: Any, event_log: EventLog, sender: str, answer: str, history: List[Dict[str, Any]]) -> List[str]:
    """The customer's answer to utter_ask_handover_contact, through the form's validation and the save action."""
    tracker = make_tracker(answer, "inform", sender_id=sender, history=history, active_loop="handover_contact_form",
                           slots={"requested_slot": "handover_contact"})
    validated = await ValidateHandoverContactForm().validate_handover_contact(answer, CollectingDispatcher(), tracker, {})
    dispatcher = CollectingDispatcher()
    saved = make_tracker(answer, "inform", sender_id=sender, history=history, slots=validated)
    await ActionSaveHandoverContact(client=client, writer=event_log.writer).run(dispatcher, saved, {})
    return [m["text"] for m in dispatcher.messages]


def ticket_text() -> str:
    return handover.TICKET.format(when="on Monday at 08:00 (Europe/Berlin)", contact=f" (or write to {handover.SUPPORT_EMAIL} if that suits you better)")


async def test_a_second_miss_out_of_hours_asks_how_to_reach_the_customer(event_log: EventLog, redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    dont_know = turn("what is the airspeed of a swallow", "ask_question", action_event("action_answer_faq"), bot_event(DONT_KNOW))
    tracker = make_tracker("zzz", "nlu_fallback", confidence=0.5, history=dont_know, sender_id="conv-miss-t")
    dispatcher = CollectingDispatcher()
    events = await ActionFallback(writer=event_log.writer, requester=out_of_hours(client, event_log)).run(dispatcher, tracker, {})
    # The same form as "I want a person" (and not reverted: the form must not read the message before as the answer).
    assert events == [ActiveLoop("handover_contact_form")]
    assert [m["text"] for m in dispatcher.messages] == [fallback.STILL_LOST, ticket_text()]
    request = await client.hgetall(request_key("conv-miss-t"))
    assert (request["ticket"], request["trigger"]) == ("1", "misses")
    history = [*dont_know, action_event("action_listen"), user_event("zzz", "nlu_fallback", 0.5), action_event("action_fallback")]
    said = await leave_contact(client, event_log, "conv-miss-t", "call me on +49 30 1234567", history)
    assert said == [handover_contact.SAVED.format(contact="+49301234567")]
    assert await client.hget(request_key("conv-miss-t"), "contact") == "+49301234567"
    (contact,) = await event_log.records(HANDOVER_CONTACT)
    assert contact.data == {"kind": "phone"}
    await client.aclose()


async def test_an_faq_miss_that_raises_a_ticket_asks_for_contact_without_a_talk_to_a_person_button(
    tmp_path: Path, event_log: EventLog, redis_url: str,
) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    faq_dir, config = write_sample_kb(tmp_path)
    provider = KnowledgeBaseProvider(directory=faq_dir, config=config, encoder_factory=BagOfWordsEncoder)
    action = ActionAnswerFaq(provider=provider, writer=event_log.writer, requester=out_of_hours(client, event_log))
    first = CollectingDispatcher()
    assert await action.run(first, make_tracker("what is the weather tomorrow", sender_id="conv-faq-t"), {}) == []
    assert first.messages[0]["text"] == faq.DONT_KNOW  # one miss: offered, not brought in
    history = turn("what is the weather tomorrow", "ask_question", action_event("action_answer_faq"), bot_event(faq.DONT_KNOW))
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, make_tracker("and the moon phase on friday", sender_id="conv-faq-t", history=history), {})
    assert events == [ActiveLoop("handover_contact_form")]
    assert [(m["text"], m["buttons"]) for m in dispatcher.messages] == [(faq.DONT_KNOW_NOTED, []), (ticket_text(), [])]
    request = await client.hgetall(request_key("conv-faq-t"))
    assert (request["ticket"], request["trigger"]) == ("1", "misses")
    # A third miss while the request waits still counts the shorter "I don't know" as a miss.
    again = [*history, *turn("and the tides", "ask_question", action_event("action_answer_faq"), bot_event(faq.DONT_KNOW_NOTED))]
    assert misses_in_a_row(make_tracker("x", history=again), faq.DONT_KNOW, faq.DONT_KNOW_NOTED) == 3
    await client.aclose()


async def test_repeated_negative_feedback_out_of_hours_asks_for_contact_not_for_a_problem_report(event_log: EventLog, redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    action = ActionCaptureFeedback(writer=event_log.writer, requester=out_of_hours(client, event_log))
    history = turn("the export is terrible and broken", "give_feedback", action_event("action_capture_feedback"), bot_event(feedback.SORRY_NEGATIVE))
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, make_tracker("still awful, the export crashes", "give_feedback", sender_id="conv-neg-t", history=history), {})
    assert events == [ActiveLoop("handover_contact_form")]  # no problem_description: the form comes next, not problem_form
    assert [(m["text"], m["buttons"]) for m in dispatcher.messages] == [(feedback.SORRY_HANDED_OVER, []), (ticket_text(), [])]
    request = await client.hgetall(request_key("conv-neg-t"))
    assert (request["ticket"], request["trigger"]) == ("1", "negative_feedback")
    said = await leave_contact(client, event_log, "conv-neg-t", "skip", history)
    assert said == [handover_contact.CHAT_ONLY]
    assert "contact" not in await client.hgetall(request_key("conv-neg-t"))
    assert await event_log.records(PROBLEM) == []
    # The apology without the question counts as negative feedback too: a third is the third.
    later = [*history, *turn("still awful", "give_feedback", action_event("action_capture_feedback"), bot_event(feedback.SORRY_HANDED_OVER))]
    assert negative_in_session(make_tracker("x", history=later), feedback.SORRY_NEGATIVE, feedback.SORRY_HANDED_OVER) == 3
    await client.aclose()


async def test_a_trigger_out_of_hours_with_a_verified_email_asks_nothing_more(event_log: EventLog, redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    # A customer who confirmed an e-mail (a portal sign-in here): the ticket says where the answer may come.
    sender = (await CustomerDirectory(client).resolve([(Identity.of("portal", "acme:u-7"), "portal_jwt"),
                                                        (Identity.of("email", "dana@acme.example"), "portal_jwt")])).customer_id
    dont_know = turn("what is the airspeed of a swallow", "ask_question", action_event("action_answer_faq"), bot_event(DONT_KNOW))
    tracker = make_tracker("zzz", "nlu_fallback", confidence=0.5, history=dont_know, sender_id=sender)
    dispatcher = CollectingDispatcher()
    events = await ActionFallback(writer=event_log.writer, requester=out_of_hours(client, event_log)).run(dispatcher, tracker, {})
    assert events == [UserUtteranceReverted()]  # no form: the ticket has where to write
    assert dispatcher.messages[1]["text"].endswith("or write to dana@acme.example.")
    assert await client.hget(request_key(sender), "contact") == "dana@acme.example"
    await client.aclose()
