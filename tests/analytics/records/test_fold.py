"""The customer record as a pure fold: arrival order and repeats change nothing."""

from __future__ import annotations

import random

from analytics.records.facts import fact_of
from analytics.records.fold import canonical, fold, parse
from analytics.schema import FEEDBACK, IDENTITY_LINKED, IDENTITY_UNLINKED, LEAD_FIELD_CAPTURED, SOURCE_ACTION, LogEvent
from tests.analytics.support import conversation_events


def facts_for(customer: str, events: list) -> list:
    """Facts as the consumer makes them: each event at its own place in the log."""
    facts = (fact_of(e, f"{1_000_000 + n}-0") for n, e in enumerate(events) if e.conversation_id == customer)
    return [f for f in facts if f is not None]


def test_any_order_and_any_repeats_give_the_same_bytes() -> None:
    facts = facts_for("C-0000000000000003", conversation_events(seed=1))
    expected = canonical(fold("C-0000000000000003", facts))
    rng = random.Random(7)
    for _ in range(20):
        shuffled = facts + rng.sample(facts, 10)  # redeliveries
        rng.shuffle(shuffled)
        unique = list({canonical(f): f for f in shuffled}.values())
        assert canonical(fold("C-0000000000000003", unique)) == expected


def test_the_record_counts_what_the_customer_did() -> None:
    events = conversation_events(seed=2, customers=1, per_customer=40)
    record = fold("C-0000000000000000", facts_for("C-0000000000000000", events))
    user_events = [e for e in events if e.type == "user"]
    assert record["counts"]["messages"] == len(user_events) == 40
    assert record["counts"]["sessions"] == 1
    assert record["first_seen"] == round(min(e.timestamp for e in events), 6)  # facts keep microseconds
    assert record["last_seen"] == round(max(e.timestamp for e in events), 6)
    assert sum(seen["messages"] for seen in record["channels"].values()) == 40
    assert record["counts"]["ideas"] == sum(e.type == "idea" for e in events)
    assert len(record["feedback"]) == min(record["counts"]["feedback"], 20)


def test_lead_answers_keep_what_the_customer_said() -> None:
    event = LogEvent(LEAD_FIELD_CAPTURED, "C-1", SOURCE_ACTION, "whatsapp", 10.0, data={"field": "lead_timeline", "value": "Within a year", "raw": "next quarter"})
    record = fold("C-1", [fact_of(event)])
    assert record["lead"]["lead_timeline"] == {"value": "Within a year", "said": "next quarter", "at": 10.0}


def test_identities_follow_links_and_unlinks_and_text_is_bounded() -> None:
    events = [
        LogEvent(IDENTITY_LINKED, "C-1", SOURCE_ACTION, "socketio", 1.0, data={"identity": "email:dana@acme.example"}),
        LogEvent(FEEDBACK, "C-1", SOURCE_ACTION, "portal", 2.0, data={"feedback": "x" * 5000, "sentiment": "positive", "context": {"page": 7, "secret": "no"}}),
        LogEvent(IDENTITY_UNLINKED, "C-1", "staff", "email", 3.0, data={"identity": "email:dana@acme.example"}),
    ]
    record = fold("C-1", [fact_of(e, f"{n}-0") for n, e in enumerate(events, 1)])
    assert record["identities"] == []
    (feedback,) = record["feedback"]
    assert len(feedback["text"]) == 280 and feedback["context"] == {"page": "7"}


def test_events_without_a_bearing_on_the_record_are_skipped() -> None:
    assert fact_of(LogEvent("slot", "C-1", "rasa", data={"name": "x", "value": 1})) is None
    assert fact_of(LogEvent("action", "C-1", "rasa", data={"name": "action_listen"})) is None


def test_canonical_is_one_spelling_per_value_and_parse_reads_it_back() -> None:
    values = [
        {"b": [1, 0.00001, 1e16], "a": {"z": None, "y": "é"}},
        {"text": "a lone \ud800 surrogate"},  # orjson refuses it: the standard library spells it
        {3: "a key that is not text"},
    ]
    for value in values:
        spelled = canonical(value)
        assert spelled == canonical(value)
        again = parse(spelled)
        assert canonical(again) == spelled  # stored and read back, it spells the same
    assert canonical({"b": 1, "a": [2, 3]}) == '{"a":[2,3],"b":1}'
    assert canonical({"a": "é"}) == '{"a":"é"}'
