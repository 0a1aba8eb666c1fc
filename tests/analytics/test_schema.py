"""The interaction-log record: flattening, parsing and mapping of Rasa tracker events."""

from __future__ import annotations

import os
from typing import Any, Callable, List, Tuple, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.schema import (
    FIELD_ORDER,
    SCHEMA_VERSION,
    SOURCE_ACTION,
    SOURCE_RASA,
    LogEvent,
    SchemaError,
    from_tracker_event,
)


def test_round_trip_keeps_every_field() -> None:
    event = LogEvent(
        type="feedback",
        conversation_id="c-1",
        source=SOURCE_ACTION,
        channel="rest",
        text="the dashboard is lovely",
        intent="give_feedback",
        confidence=0.93,
        metadata={"page": "/insights", "nested": {"a": [1, 2]}},
        data={"sentiment": "positive", "score": 0.8},
    )
    fields = event.to_fields()
    assert all(isinstance(v, str) for v in fields.values())
    assert LogEvent.from_fields(fields) == event


def test_from_fields_accepts_bytes_as_redis_returns_them() -> None:
    event = LogEvent(type="user", conversation_id="c", source=SOURCE_RASA)
    raw = {k.encode(): v.encode() for k, v in event.to_fields().items()}
    parsed = LogEvent.from_fields(raw)
    assert parsed.confidence is None
    assert parsed.event_id == event.event_id


@pytest.mark.parametrize(
    "change, message",
    [
        ({"schema_version": ""}, "schema_version"),
        ({"schema_version": str(SCHEMA_VERSION + 1)}, "newer"),
        ({"conversation_id": ""}, "conversation_id"),
        ({"metadata": "{not json"}, "metadata"),
        ({"timestamp": "soon"}, "'timestamp' is not a number"),
        ({"timestamp": "nan"}, "'timestamp' is not a finite number"),
        ({"confidence": "inf"}, "'confidence' is not a finite number"),
    ],
)
def test_malformed_entries_are_refused_with_a_reason(change: dict, message: str) -> None:
    fields = LogEvent(type="user", conversation_id="c", source=SOURCE_RASA).to_fields()
    fields.update(change)
    with pytest.raises(SchemaError, match=message):
        LogEvent.from_fields(fields)


def test_user_event_maps_intent_confidence_channel_and_metadata() -> None:
    tracker_event = {
        "event": "user",
        "sender_id": "abc",
        "timestamp": 1700000000.5,
        "text": "how much is the team plan?",
        "input_channel": "rest",
        "metadata": {"page": "/pricing"},
        "parse_data": {"intent": {"name": "ask_pricing", "confidence": 0.97}, "entities": []},
    }
    record = from_tracker_event(tracker_event)
    assert (record.type, record.conversation_id, record.channel) == ("user", "abc", "rest")
    assert (record.intent, record.confidence) == ("ask_pricing", 0.97)
    assert record.metadata == {"page": "/pricing"}
    assert record.timestamp == 1700000000.5
    assert record.source == SOURCE_RASA


def test_bot_and_action_events_take_the_remembered_channel() -> None:
    action = from_tracker_event(
        {"event": "action", "sender_id": "abc", "name": "action_answer_faq", "policy": "RulePolicy"},
        channel="rest",
    )
    assert action.channel == "rest"
    assert action.data == {"name": "action_answer_faq", "policy": "RulePolicy"}
    slot = from_tracker_event({"event": "slot", "sender_id": "abc", "name": "lead_email", "value": None})
    assert slot.data == {"name": "lead_email", "value": None}


def test_bot_buttons_message_id_and_action_confidence_are_kept() -> None:
    bot = from_tracker_event(
        {"event": "bot", "sender_id": "a", "text": "Pick one", "data": {"buttons": [{"title": "Yes", "payload": "/affirm"}]}}
    )
    assert bot.data["buttons"] == [{"title": "Yes", "payload": "/affirm"}]
    user = from_tracker_event({"event": "user", "sender_id": "a", "text": "hi", "message_id": "m1"})
    assert user.data["message_id"] == "m1"
    action = from_tracker_event({"event": "action", "sender_id": "a", "name": "x", "confidence": 0.7})
    assert action.data["confidence"] == 0.7


def test_json_fields_the_fast_parser_refuses_still_parse_as_before() -> None:
    # orjson refuses a lone surrogate and NaN, which json.dumps writes; the standard library read
    # them, and the entry must still count (not be dead-lettered) with the same values.
    event = LogEvent("feedback", "C-1", SOURCE_ACTION, data={"feedback": "odd \ud800 text", "score": float("inf")})
    parsed = LogEvent.from_fields(event.to_fields(), decoded=True)
    assert parsed.data == event.data


def parsed(parse: Callable[[], LogEvent]) -> Union[LogEvent, str]:
    """What a reader makes of an entry: the event, or the SchemaError's text (any other error fails)."""
    try:
        return parse()
    except SchemaError as exc:
        return f"SchemaError: {exc}"


def _good_fields() -> dict:
    return LogEvent("user", "c-1", SOURCE_RASA, "portal", 100.5, text="hi", intent="greet", confidence=0.9,
                    metadata={"page": "/x"}, data={"a": 1}, event_id="e-1").to_fields()


@pytest.mark.parametrize(
    "change",
    [
        {}, {"metadata": "{}", "data": ""}, {"confidence": ""}, {"schema_version": "x"}, {"schema_version": str(SCHEMA_VERSION + 1)},
        {"type": ""}, {"event_id": ""}, {"source": ""}, {"timestamp": "nan"}, {"timestamp": "soon"}, {"data": "{not json"},
        {"metadata": "[1]"}, {"extra": "field"}, {"drop": "channel"}, {"drop": "schema_version"}, {"reverse": True},
        {"data": "9" * 5_000}, {"metadata": "[" * 5_000 + "]" * 5_000},  # found by the fuzzed test below
    ],
)
def test_an_entry_read_as_pairs_parses_as_the_same_entry_read_as_a_mapping(change: dict) -> None:
    """The replay reads entries as Redis sends them (field, value, ...); what it makes of one (or the
    error it gives) is what the consumers make of it as a mapping, whatever the fields' order."""
    fields = _good_fields()
    if "drop" in change:
        del fields[change["drop"]]
    elif "reverse" in change:
        fields = dict(reversed(fields.items()))
    else:
        fields.update(change)
    pairs = [part for item in fields.items() for part in item]

    expected = parsed(lambda: LogEvent.from_fields(fields, decoded=True))
    assert parsed(lambda: LogEvent.from_pairs(pairs)) == expected
    if not change:
        assert isinstance(expected, LogEvent) and expected.event_id == "e-1" and expected.metadata == {"page": "/x"}


ODD_VALUES = ["", " ", "0", "-1", "1.5", "nan", "-inf", "1e400", "9" * 5000, "{}", "[]", "null", "true", '{"a": 1}', '{"a": [1, {"b": null}]}',
              "[" * 5000, "{" * 5000, '"\\ud800"', "NaN", "\x00", "é" * 300, "x" * 70_000]


@settings(max_examples=int(os.environ.get("ENGAGE_FUZZ_EXAMPLES", "300")), derandomize=True, database=None, deadline=None,
          suppress_health_check=(HealthCheck.too_slow, HealthCheck.data_too_large))
@given(
    values=st.lists(st.one_of(st.sampled_from(ODD_VALUES), st.text(max_size=40), st.from_regex(r"-?\d{1,20}(\.\d{0,8})?(e-?\d{1,3})?", fullmatch=True)),
                    min_size=len(FIELD_ORDER), max_size=len(FIELD_ORDER)),
    keep=st.lists(st.booleans(), min_size=len(FIELD_ORDER), max_size=len(FIELD_ORDER)),
    extra=st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12)), max_size=3),
    shuffled=st.randoms(use_true_random=False),
    shape=st.sampled_from(["in order", "one changed", "fields dropped", "shuffled", "extra fields"]),
)
def test_any_entry_read_as_pairs_parses_as_the_mapping_does_or_fails_with_a_schema_error(
    values: List[str], keep: List[bool], extra: List[Tuple[str, str]], shuffled: Any, shape: str
) -> None:
    """Fuzzed entries, most of them malformed (odd numbers, broken or deep JSON, huge and binary text,
    missing, reordered and unknown fields): both readers give the same event or the same SchemaError,
    and never any other error (the consumers dead-letter a SchemaError and go on)."""
    items = list(zip(FIELD_ORDER, values))
    if shape == "one changed":  # a good entry with one odd value, on the fast path
        items = list(_good_fields().items())
        changed = sum(keep) % len(items)
        items[changed] = (items[changed][0], values[changed])
    elif shape == "fields dropped":
        items = [item for item, kept in zip(items, keep) if kept]
    elif shape == "shuffled":
        shuffled.shuffle(items)
    elif shape == "extra fields":
        items += [(key, value) for key, value in extra if key not in FIELD_ORDER]
    pairs = [part for item in items for part in item]

    assert repr(parsed(lambda: LogEvent.from_pairs(pairs))) == repr(parsed(lambda: LogEvent.from_fields(dict(items), decoded=True)))
