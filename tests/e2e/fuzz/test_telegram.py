"""Fuzzing the Telegram webhook: updates of every kind (and with one field made wrong), with the
test secret token or not, raw bodies, repeated update ids. Any request gets a 2xx or a clean 4xx,
quickly; a refused or ignored update reaches no one; a message gets a reply at the fake Bot API
and, when it is text, is one turn in both the tracker and the log, even twice sent."""

from __future__ import annotations

import copy
import os
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
from tests.fakes import telegram_api as tg

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
CALLBACK_PREFIX = "cb:"  # connectors.telegram (which needs Rasa, not in this runtime)


def new_user_id() -> int:
    return 7_000_000_000 + secrets.randbelow(10**9)  # not random: hypothesis seeds it per case


def new_update_id() -> int:
    return 10**12 + secrets.randbelow(10**12)


FRESH_USER = Fresh(new_user_id)
FRESH_UPDATE = Fresh(new_update_id)
ANSWERED = ("text", "callback", "photo", "sticker", "voice")  # kinds that get a reply

updates = st.one_of(
    st.tuples(st.just("text"), st.builds(tg.text_update, st.just(FRESH_USER), message_texts, update_id=st.just(FRESH_UPDATE))),
    st.tuples(st.just("text"), st.builds(tg.text_update, st.just(FRESH_USER), message_texts, update_id=st.just(FRESH_UPDATE))),
    st.tuples(st.just("callback"), st.builds(tg.callback_update, st.just(FRESH_USER), st.one_of(st.just("/greet"), plain_text, edge_text), update_id=st.just(FRESH_UPDATE))),
    st.tuples(st.just("photo"), st.builds(tg.photo_update, st.just(FRESH_USER), caption=st.one_of(st.none(), plain_text), update_id=st.just(FRESH_UPDATE))),
    st.tuples(st.just("sticker"), st.builds(tg.sticker_update, st.just(FRESH_USER), update_id=st.just(FRESH_UPDATE))),
    st.tuples(st.just("voice"), st.builds(tg.voice_update, st.just(FRESH_USER), update_id=st.just(FRESH_UPDATE))),
    st.tuples(st.just("edited"), st.builds(tg.edited_message_update, st.just(FRESH_USER), message_texts, update_id=st.just(FRESH_UPDATE))),
    st.tuples(st.just("channel"), st.builds(tg.channel_post_update, st.just(FRESH_USER), message_texts, update_id=st.just(FRESH_UPDATE))),
)
# One field of a good update made wrong: (path, new value).
changes = st.one_of(
    st.tuples(st.just(("update_id",)), st.one_of(json_values, st.just(True), st.just(-1), st.just(2**70), st.just("12"))),
    st.tuples(st.just(("message",)), json_values),
    st.tuples(st.just(("message", "from")), json_values),
    st.tuples(st.just(("message", "from", "id")), st.one_of(json_values, st.just(0), st.just(-5), st.just(2**70), st.just("42"))),
    st.tuples(st.just(("message", "from", "is_bot")), st.just(True)),
    st.tuples(st.just(("message", "from", "username")), st.one_of(edge_text, json_scalars)),
    st.tuples(st.just(("message", "chat")), json_values),
    st.tuples(st.just(("message", "chat", "id")), st.one_of(json_values, st.just(2**70))),
    st.tuples(st.just(("message", "text")), json_values),
)
secrets_sent = st.sampled_from(["good"] * 5 + ["wrong", "missing", "empty", "garbage"])
cases = st.one_of(
    st.tuples(st.just("good"), updates, st.none()),
    st.tuples(st.just("good"), updates, st.none()),
    st.tuples(st.just("changed"), updates.filter(lambda u: u[0] == "text"), changes),
    st.tuples(st.just("json"), json_values, st.none()),
    st.tuples(st.just("raw"), raw_bodies, st.none()),
)


def changed(update: Dict[str, Any], path: Tuple[Any, ...], value: Any) -> Dict[str, Any]:
    result = copy.deepcopy(update)
    target: Any = result
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return result


def test_telegram_answers_anything_and_writes_whole_turns_or_nothing(
    stack: Stack, providers: Providers, store: redis.Redis, log: LogTail
) -> None:
    url = f"{stack.rasa_url}/webhooks/telegram/webhook"
    secret = os.environ["TELEGRAM_WEBHOOK_SECRET"]
    untouched: Set[str] = set()
    tally = Tally("telegram", stack)

    def sent_to(chat_id: Any) -> List[Dict[str, Any]]:
        return [m for m in list(providers.telegram.messages) if m.get("chat_id") == chat_id]

    @fuzz
    @given(case=cases, sent=secrets_sent, garbage=st.one_of(plain_text, edge_text), repeat=st.booleans())
    def one(case: Tuple[str, Any, Any], sent: str, garbage: str, repeat: bool) -> None:
        kind, update, change = case
        found: Dict[int, Any] = {}
        update = fresh_in(update, found)
        if kind == "changed":
            update = changed(update[1], *change)
        elif kind == "good":
            update_kind, update = update
        body = update if kind == "raw" else tg.encode(update)
        headers: Dict[str, Any] = {"Content-Type": "application/json"}
        value = {"good": secret, "wrong": "guess", "empty": "", "garbage": garbage}.get(sent)
        if value is not None:
            headers[SECRET_HEADER] = header_value(value)
        response, seconds = timed("POST", url, data=body, headers=headers)
        tally.count(response.status_code)
        assert_answered(response, seconds)
        users = {v for v in found.values() if v < 10**12}
        if response.status_code >= 400:
            untouched.update(f"engage:identity:telegram:{u}" for u in users)
            assert not any(sent_to(u) for u in users)
            return
        assert response.status_code == 200 and sent == "good", (sent, response.text)
        if kind != "good":
            return  # ignored or answered: either way the server must carry on (checked at the end)
        (user,) = users
        if update_kind not in ANSWERED:
            untouched.add(f"engage:identity:telegram:{user}")  # edits and channel posts are ignored
            return
        eventually(lambda: sent_to(user), f"a reply to {user}", 30)
        customer = customer_of(store, f"telegram:{user}")
        assert customer
        if update_kind == "text":
            text = update["message"]["text"]
        elif update_kind == "callback":  # data not in the button store's "cb:" form is read as it is
            data = update["callback_query"].get("data")
            text = None if data.startswith(CALLBACK_PREFIX) else data
        else:
            text = None
        if repeat:  # Telegram retries an update it thinks failed: handled once
            again, _ = timed("POST", url, data=body, headers=headers)
            assert again.status_code == 200, again.text
            sentinel = tg.text_update(user, SENTINEL, update_id=new_update_id())
            assert requests.post(url, data=tg.encode(sentinel), headers=headers, timeout=30).status_code == 200
            eventually(lambda: SENTINEL_REPLY in [m.get("text") for m in sent_to(user)], "the reply to the sentinel", 30)
            assert [m.get("text") for m in sent_to(user)].count(SENTINEL_REPLY) == 1
        assert_turn_recorded(stack, log, customer, [expected_text(text)] if ordinary(text) else [])
        tally.turns_checked += 1

    try:
        one()
    finally:
        tally.write()
    tally.assert_quiet()
    assert_nothing_written(store, log, set(), untouched)
    user = new_user_id()
    headers = {"Content-Type": "application/json", SECRET_HEADER: secret}
    assert requests.post(url, data=tg.encode(tg.text_update(user, "hello")), headers=headers, timeout=30).status_code == 200
    eventually(lambda: sent_to(user), "a reply after the fuzzing", 30)  # still serving
