"""Fuzzing the WhatsApp webhook: envelopes and messages of every shape (and with one field made
wrong), signed with the test app secret or not, raw bodies signed or not, redeliveries. Any
request gets a 2xx or a clean 4xx, quickly; a refused one reaches no one; a well-formed message
gets a reply at the fake Graph API and is one turn in both the tracker and the log, even twice sent."""

from __future__ import annotations

import copy
import hashlib
import hmac
import secrets
from typing import Any, Dict, List, Set, Tuple

import redis
import requests
from hypothesis import given
from hypothesis import strategies as st

from scripts.stack import Stack
from tests.e2e.conftest import Providers, eventually
from tests.e2e.fuzz.support import (
    SENTINEL, SENTINEL_REPLY, Fresh, LogTail, Tally, assert_answered, assert_nothing_written, assert_turn_recorded, customer_of,
    edge_text, expected_text, fresh_in, fuzz, header_value, json_scalars, json_values, message_texts, ordinary, plain_text,
    raw_bodies, timed,
)
from tests.fakes import whatsapp_graph as wa

def new_number() -> str:
    # secrets, not random: hypothesis seeds the random module for each case, so it would repeat
    return f"49170{secrets.randbelow(10**8):08d}"


FRESH_NUMBER = Fresh(new_number)
MESSAGE = ("entry", 0, "changes", 0, "value", "messages", 0)

good_messages = st.one_of(
    st.builds(wa.text_message, st.just(FRESH_NUMBER), message_texts),
    st.builds(wa.text_message, st.just(FRESH_NUMBER), message_texts),
    st.builds(wa.button_reply, st.just(FRESH_NUMBER), st.one_of(st.sampled_from(["/greet", "/suggest_idea", "/ask_pricing"]), edge_text), plain_text),
    st.builds(wa.list_reply, st.just(FRESH_NUMBER), st.one_of(st.sampled_from(["/greet", "/suggest_idea"]), plain_text), plain_text),
    st.builds(wa.image_message, st.just(FRESH_NUMBER), plain_text),
    st.builds(wa.sticker_message, st.just(FRESH_NUMBER)),
)
# One field of a good notification made wrong: (path, new value); a value of None at "-" removes it.
changes = st.one_of(
    st.tuples(st.just(("object",)), st.one_of(st.just("page"), json_scalars)),
    st.tuples(st.just(("entry",)), json_values),
    st.tuples(st.just(("entry", 0, "changes")), json_values),
    st.tuples(st.just(("entry", 0, "changes", 0, "field")), st.one_of(st.just("statuses"), json_scalars)),
    st.tuples(st.just(("entry", 0, "changes", 0, "value", "metadata", "phone_number_id")), st.one_of(st.just("999"), json_scalars)),
    st.tuples(st.just(("entry", 0, "changes", 0, "value", "messages")), json_values),
    st.tuples(st.just(("entry", 0, "changes", 0, "value", "contacts")), json_values),
    st.tuples(st.just(MESSAGE + ("from",)), st.one_of(json_values, st.just("+49 151 2345-6789"), st.just("0"), st.just("1" * 30))),
    st.tuples(st.just(MESSAGE + ("id",)), st.one_of(json_scalars, st.just(""), st.just("w" * 300))),
    st.tuples(st.just(MESSAGE + ("type",)), st.one_of(st.sampled_from(["reaction", "system", "location", "unknown", ""]), json_scalars)),
    st.tuples(st.just(MESSAGE + ("text",)), json_values),
    st.tuples(st.just(MESSAGE + ("interactive",)), json_values),
)
signatures = st.sampled_from(["good", "good", "good", "upper", "wrong-secret", "missing", "empty", "sha1", "other-body", "garbage"])
cases = st.one_of(
    st.tuples(st.just("good"), good_messages, st.none()),
    st.tuples(st.just("good"), good_messages, st.none()),
    st.tuples(st.just("changed"), good_messages, changes),
    st.tuples(st.just("json"), json_values, st.none()),
    st.tuples(st.just("raw"), raw_bodies, st.none()),
)


def changed(payload: Dict[str, Any], path: Tuple[Any, ...], value: Any) -> Dict[str, Any]:
    result = copy.deepcopy(payload)
    target: Any = result
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return result


def headers_for(body: bytes, kind: str, garbage: str) -> Dict[str, Any]:
    digest = hmac.new(wa.APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    signature = {
        "good": f"sha256={digest}",
        "upper": f"SHA256={digest.upper()}",
        "wrong-secret": wa.signature(body, "not-the-app-secret"),
        "empty": "",
        "sha1": "sha1=" + hmac.new(wa.APP_SECRET.encode(), body, hashlib.sha1).hexdigest(),
        "other-body": wa.signature(body + b" "),
        "garbage": garbage,
    }.get(kind)
    headers: Dict[str, Any] = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = header_value(signature)
    return headers


def text_of(message: Dict[str, Any]) -> Any:
    """What reaches Rasa from a well-formed message (connectors.whatsapp.message_text), or None."""
    kind = message["type"]
    if kind == "text":
        return message["text"]["body"]
    if kind == "interactive":
        reply = message["interactive"][message["interactive"]["type"]]
        return reply.get("id") or reply.get("title")
    return None


def body_of(sent: Dict[str, Any]) -> Any:
    return sent["text"]["body"] if sent.get("type") == "text" else None


def test_whatsapp_answers_anything_and_writes_whole_turns_or_nothing(
    stack: Stack, providers: Providers, store: redis.Redis, log: LogTail
) -> None:
    url = f"{stack.rasa_url}/webhooks/whatsapp/webhook"
    untouched: Set[str] = set()
    tally = Tally("whatsapp", stack)

    def sent_to(number: str) -> List[Dict[str, Any]]:
        return [m for m in list(providers.graph.sent) if m.get("to") == number]

    @fuzz
    @given(case=cases, signature=signatures, garbage=st.one_of(plain_text, edge_text), repeat=st.booleans())
    def one(case: Tuple[str, Any, Any], signature: str, garbage: str, repeat: bool) -> None:
        kind, payload, change = case
        found: Dict[int, Any] = {}
        payload = fresh_in(payload, found)
        if kind == "changed":
            payload = changed(payload, *change)
        body = payload if kind == "raw" else wa.encode(payload)
        headers = headers_for(body, signature, garbage)
        response, seconds = timed("POST", url, data=body, headers=headers)
        tally.count(response.status_code)
        assert_answered(response, seconds)
        numbers = set(found.values())
        if response.status_code >= 400:
            untouched.update(f"engage:identity:whatsapp:{n}" for n in numbers)
            assert not any(sent_to(n) for n in numbers)
            return
        assert response.status_code == 200 and signature in ("good", "upper"), (signature, response.text)
        if kind != "good":
            return  # ignored or answered: either way the server must carry on (checked at the end)
        (number,) = numbers
        eventually(lambda: sent_to(number), f"a reply to {number}", 30)
        customer = customer_of(store, f"whatsapp:{number}")
        assert customer
        text = text_of(payload["entry"][0]["changes"][0]["value"]["messages"][0])
        if repeat:  # Meta redelivers when unsure we got it: handled once
            again, _ = timed("POST", url, data=body, headers=headers)
            assert again.status_code == 200, again.text
            sentinel, sentinel_headers = wa.signed(wa.text_message(number, SENTINEL))
            assert requests.post(url, data=sentinel, headers=sentinel_headers, timeout=30).status_code == 200
            eventually(lambda: SENTINEL_REPLY in map(body_of, sent_to(number)), "the reply to the sentinel", 30)
            assert list(map(body_of, sent_to(number))).count(SENTINEL_REPLY) == 1
        assert_turn_recorded(stack, log, customer, [expected_text(text)] if ordinary(text) else [])
        tally.turns_checked += 1

    try:
        one()
    finally:
        tally.write()
    tally.assert_quiet()
    assert_nothing_written(store, log, set(), untouched)
    number = new_number()
    body, headers = wa.signed(wa.text_message(number, "hello"))
    assert requests.post(url, data=body, headers=headers, timeout=30).status_code == 200
    eventually(lambda: sent_to(number), "a reply after the fuzzing", 30)  # still serving
