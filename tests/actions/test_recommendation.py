"""Recommendation and referral: asked once in a while after a resolved conversation, scores logged, promoters invited to refer."""

from __future__ import annotations


import pytest
import redis.asyncio
from rasa_sdk.executor import CollectingDispatcher

from actions.constants import RECOMMENDATION_ASKED, REFERRAL_EMAIL
from actions.recommendation import (
    ASKED_PREFIX,
    NO_SCORE,
    NOT_AN_EMAIL,
    QUESTION,
    ActionRecordRecommendation,
    ActionSubmitReferral,
    ActionThank,
    ValidateReferralForm,
    group_of,
    score_in,
)
from analytics.schema import RECOMMENDATION, REFERRAL
from tests.actions.conftest import EventLog, action_event, entity, make_tracker

CUSTOMER = "C-00000000000000c7"
ANSWERED = [action_event("action_answer_faq")]


def test_scores_are_read_from_buttons_and_words_and_grouped() -> None:
    assert [score_in(v) for v in ("9", "I'd say 8", "10 out of 10", "0", "a solid 7.5", "100", "about 10k", "none")] == [9, 8, 10, 0, None, None, None, None]
    assert [group_of(s) for s in (10, 9, 8, 7, 6, 0)] == ["promoter", "promoter", "passive", "passive", "detractor", "detractor"]


async def test_asked_after_a_resolved_conversation_once_per_customer(client: redis.asyncio.Redis) -> None:
    action = ActionThank(client=client)
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, make_tracker("thanks!", "thank", sender_id=CUSTOMER, channel="socketio", history=ANSWERED), {})
    (message,) = dispatcher.messages
    assert QUESTION in message["text"] and [b["title"] for b in message["buttons"]] == [str(n) for n in range(11)]
    assert events == [{"event": "slot", "timestamp": None, "name": RECOMMENDATION_ASKED, "value": True}]
    assert 0 < await client.ttl(ASKED_PREFIX + CUSTOMER) <= 90 * 24 * 3600
    # Asked: the next thanks (any channel, any process) is just "you're welcome".
    again = CollectingDispatcher()
    assert await action.run(again, make_tracker("thanks", "thank", sender_id=CUSTOMER, history=ANSWERED), {}) == []
    assert again.messages[0]["response"] == "utter_you_are_welcome"


@pytest.mark.parametrize(
    "sender, history, channel",
    [
        ("rest-tester", ANSWERED, "rest"),  # not a verified customer
        (CUSTOMER, [], "socketio"),  # nothing resolved in this session
        (CUSTOMER, [*ANSWERED, {"event": "session_started", "timestamp": 2.0}], "socketio"),  # resolved in an earlier session
    ],
)
async def test_not_asked_without_a_reason(client: redis.asyncio.Redis, sender: str, history: list, channel: str) -> None:
    dispatcher = CollectingDispatcher()
    await ActionThank(client=client).run(dispatcher, make_tracker("thanks", "thank", sender_id=sender, channel=channel, history=history), {})
    assert dispatcher.messages[0]["response"] == "utter_you_are_welcome" and await client.exists(ASKED_PREFIX + sender) == 0


async def test_whatsapp_gets_the_question_without_eleven_buttons(client: redis.asyncio.Redis) -> None:
    dispatcher = CollectingDispatcher()
    await ActionThank(client=client).run(dispatcher, make_tracker("thanks", "thank", sender_id=CUSTOMER, channel="whatsapp", history=ANSWERED), {})
    assert QUESTION in dispatcher.messages[0]["text"] and dispatcher.messages[0]["buttons"] == []


async def test_a_score_is_logged_and_a_promoter_is_invited_to_refer(event_log: EventLog) -> None:
    action = ActionRecordRecommendation(writer=event_log.writer)
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("/rate_recommendation", "rate_recommendation", sender_id=CUSTOMER, entities=[entity("recommendation_score", "9")],
                           slots={RECOMMENDATION_ASKED: True})
    assert await action.run(dispatcher, tracker, {}) == [{"event": "slot", "timestamp": None, "name": RECOMMENDATION_ASKED, "value": False}]
    assert [b["title"] for b in dispatcher.messages[0]["buttons"]] == ["Invite a colleague", "No, thanks"]
    typed = CollectingDispatcher()
    await action.run(typed, make_tracker("hmm, I'd say 6", "inform", sender_id=CUSTOMER, slots={RECOMMENDATION_ASKED: True}), {})
    assert "buttons" not in typed.messages[0] or not typed.messages[0]["buttons"]
    nothing = CollectingDispatcher()
    await action.run(nothing, make_tracker("not sure", "inform", sender_id=CUSTOMER, slots={RECOMMENDATION_ASKED: True}), {})
    assert nothing.messages[0]["text"] == NO_SCORE
    records = await event_log.records(RECOMMENDATION)
    assert [(r.data["score"], r.data["group"]) for r in records] == [(9, "promoter"), (6, "detractor")]


async def test_a_referral_takes_a_real_address_and_is_logged(event_log: EventLog) -> None:
    form = ValidateReferralForm()
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("x", "inform", sender_id=CUSTOMER, slots={"lead_email": "dana@acme.example"})
    assert await form.validate_referral_email("my friend", dispatcher, tracker, {}) == {REFERRAL_EMAIL: None}
    assert dispatcher.messages[-1]["text"] == NOT_AN_EMAIL
    assert await form.validate_referral_email("Dana@Acme.example", dispatcher, tracker, {}) == {REFERRAL_EMAIL: None}
    assert await form.validate_referral_email("it's sam@othercorp.example", dispatcher, tracker, {}) == {REFERRAL_EMAIL: "sam@othercorp.example"}
    done = CollectingDispatcher()
    await ActionSubmitReferral(writer=event_log.writer).run(done, make_tracker("x", sender_id=CUSTOMER, slots={REFERRAL_EMAIL: "sam@othercorp.example"}), {})
    assert "sam@othercorp.example" in done.messages[0]["text"]
    (record,) = await event_log.records(REFERRAL)
    assert record.data == {"referee": "sam@othercorp.example", "domain": "othercorp.example"} and record.conversation_id == CUSTOMER
