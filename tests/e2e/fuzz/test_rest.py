"""Fuzzing the REST channel: any body gets a 2xx or a clean 4xx, quickly; a refused one leaves
nothing behind; an accepted one is one turn in both the tracker and the interaction log."""

from __future__ import annotations

from typing import Any, Dict, Set, Tuple

import redis
from hypothesis import given
from hypothesis import strategies as st

from scripts.stack import Stack
from tests.e2e.fuzz.support import (
    Fresh, LogTail, Tally, assert_answered, assert_nothing_written, assert_turn_recorded, encoded, encodings,
    expected_text, fresh_in, fuzz, json_scalars, json_values, message_texts, new_sender, ordinary,
    plain_text, raw_bodies, timed,
)

FRESH_SENDER = Fresh(new_sender)

bad_senders = st.one_of(
    plain_text, st.integers(), st.none(), st.booleans(), st.just("x" * 200), st.just("bad sender/../x"), json_values,
)
valid_payloads = st.fixed_dictionaries(
    {"sender": st.just(FRESH_SENDER), "message": message_texts},
    optional={"metadata": st.dictionaries(plain_text, json_scalars, max_size=3), "input_channel": st.just("rest")},
)
# One thing wrong with an otherwise good payload.
mutations = st.one_of(
    st.tuples(st.just("sender"), bad_senders),
    st.tuples(st.just("message"), json_values),
    st.tuples(st.just("metadata"), st.one_of(json_values, st.integers(min_value=8000, max_value=20000).map(lambda n: {"blob": "m" * n}))),
    st.tuples(st.just("input_channel"), st.sampled_from(["whatsapp", "", "REST", "x" * 40, 1, None])),
    st.tuples(st.sampled_from(["is_admin", "sender_id", "text", ""]), json_scalars),
)
mutated_payloads = st.builds(lambda payload, change: {**payload, change[0]: change[1]}, valid_payloads, mutations)
cases = st.one_of(
    st.tuples(st.just("payload"), valid_payloads, encodings),
    st.tuples(st.just("payload"), valid_payloads, encodings),
    st.tuples(st.just("payload"), mutated_payloads, encodings),
    st.tuples(st.just("payload"), mutated_payloads, encodings),
    st.tuples(st.just("json"), json_values, encodings),
    st.tuples(st.just("raw"), raw_bodies, st.just("")),
)


def test_rest_answers_anything_and_writes_whole_turns_or_nothing(stack: Stack, store: redis.Redis, log: LogTail) -> None:
    refused: Set[str] = set()
    tally = Tally("rest", stack)

    @fuzz
    @given(case=cases)
    def one(case: Tuple[str, Any, str]) -> None:
        kind, value, how = case
        found: Dict[int, Any] = {}
        value = fresh_in(value, found)
        body = value if kind == "raw" else encoded(value, how)
        response, seconds = timed("POST", stack.rest_webhook, data=body, headers={"Content-Type": "application/json"})
        tally.count(response.status_code)
        assert_answered(response, seconds)
        fresh = set(found.values())
        if response.status_code >= 400:
            assert response.json()["error"], response.text
            refused.update(fresh)
            return
        assert response.status_code == 200
        replies = response.json()
        assert isinstance(replies, list) and replies, replies  # an answer, or at least the apology
        assert kind == "payload" and ordinary(value["message"]), value
        if value["sender"] in fresh:
            assert_turn_recorded(stack, log, value["sender"], [expected_text(value["message"])])
            tally.turns_checked += 1

    try:
        one()
    finally:
        tally.write()
    tally.assert_quiet()
    assert_nothing_written(store, log, refused)
    response, seconds = timed("POST", stack.rest_webhook, json={"sender": new_sender(), "message": "hello"})
    assert response.status_code == 200 and response.json(), response.text  # still serving
