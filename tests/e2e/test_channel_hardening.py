"""Hardening of the channels (issue 9) against the running stack: deep JSON, wrong shapes, odd ids,
lone surrogates, empty messages, long-lived portal tokens and floods, on REST, the portal, WhatsApp
and Telegram."""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Tuple

import jwt
import redis
import requests

from connectors.messages import APOLOGY_TEXT, EMPTY_TEXT, SLOW_DOWN_TEXT
from scripts.stack import Stack
from tests.e2e.conftest import Providers, eventually, log_events, post, texts, tracker
from tests.e2e.test_messaging import Telegram, WhatsApp, body_of, user_texts
from tests.fakes import telegram_api as tg
from tests.fakes import whatsapp_graph as wa

REPLACED = "\ufffd"


def nested(depth: int) -> bytes:
    """A REST body whose metadata nests arrays `depth` deep."""
    return b'{"sender": "e2e-deep", "message": "hi", "metadata": {"x": ' + b"[" * depth + b"]" * depth + b"}}"


# --- REST and the portal ---------------------------------------------------------------------------


def test_rest_metadata_nested_hundreds_deep_is_refused_not_apologised_for(stack: Stack, store: redis.Redis) -> None:
    for depth in (500, 985, 5000):
        response = post(stack, None, nested(depth))
        assert response.status_code == 400, (depth, response.text)
        assert response.json()["error"] == "invalid_json"
    assert not [e for e in tracker(stack, "e2e-deep")["events"] if e["event"] == "user"]
    assert log_events(store, "e2e-deep", settle=1.0) == []
    fine = post(stack, {"sender": "e2e-deep", "message": "hello", "metadata": {"a": {"b": [[["c"]]]}}})
    assert fine.status_code == 200 and APOLOGY_TEXT not in texts(fine.json())


def test_rest_and_portal_read_a_lone_surrogate_as_a_replacement_character(stack: Stack) -> None:
    sender = f"e2e-{uuid.uuid4().hex[:12]}"
    response = post(stack, None, f'{{"sender": "{sender}", "message": "hi \\ud800"}}'.encode())
    assert response.status_code == 200 and APOLOGY_TEXT not in texts(response.json()), response.text
    assert [e["text"] for e in tracker(stack, sender)["events"] if e["event"] == "user"] == [f"hi {REPLACED}"]


def portal_token(**overrides: Any) -> str:
    now = int(time.time())
    claims: Dict[str, Any] = {"sub": f"u-{uuid.uuid4().hex[:8]}", "account_id": "acme", "role": "member",
                              "aud": os.environ["PORTAL_JWT_AUDIENCE"], "iss": os.environ["PORTAL_JWT_ISSUER"],
                              "iat": now, "exp": now + 300, **overrides}
    return jwt.encode(claims, os.environ["PORTAL_JWT_SECRET"], algorithm="HS256")


def test_portal_refuses_a_token_that_lives_too_long(stack: Stack) -> None:
    url = f"{stack.rasa_url}/webhooks/portal/webhook"

    def send(token: str, text: str) -> requests.Response:
        return requests.post(url, json={"message": text}, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    year = send(portal_token(exp=int(time.time()) + 365 * 24 * 3600), "hi")
    assert (year.status_code, year.json()["error"]) == (401, "token_lifetime_too_long")
    lone = requests.post(url, data=b'{"message": "hi \\udfff"}',
                         headers={"Authorization": f"Bearer {portal_token()}", "Content-Type": "application/json"}, timeout=60)
    assert lone.status_code == 200 and APOLOGY_TEXT not in texts(lone.json()), lone.text


# --- WhatsApp ------------------------------------------------------------------------------------


def test_whatsapp_never_answers_a_signed_body_with_500(stack: Stack, providers: Providers, store: redis.Redis) -> None:
    phone = WhatsApp(stack, providers, store)
    for raw, status in (
        (b"[" * 1000, 400),
        (b'{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[],"contacts":1}}]}]}', 200),
        (b'{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"from":"1","type":[]}],'
         b'"contacts":"x","metadata":[]}}]},1,"x"]}', 200),
    ):
        answer = requests.post(phone.url, data=raw, headers={"X-Hub-Signature-256": wa.signature(raw)}, timeout=30)
        assert answer.status_code == status, (raw[:80], answer.status_code, answer.text)
    replies = phone.send(wa.text_message(phone.number, "hi"))  # and it still serves
    assert APOLOGY_TEXT not in [body_of(r) for r in replies]


def test_whatsapp_message_ids_that_are_not_strings_are_not_handled_again_and_again(stack: Stack, providers: Providers, store: redis.Redis) -> None:
    phone = WhatsApp(stack, providers, store)
    payload = wa.text_message(phone.number, "hello")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = 12345
    for _ in range(5):
        assert phone.post(payload).status_code == 200
    phone.send(wa.text_message(phone.number, "thanks"))
    assert user_texts(stack, phone.customer) == ["thanks"]


def test_whatsapp_lone_surrogate_and_empty_message_get_answers_and_records(stack: Stack, providers: Providers, store: redis.Redis) -> None:
    phone = WhatsApp(stack, providers, store)
    replies = phone.send(wa.text_message(phone.number, "hi \ud800"))
    assert APOLOGY_TEXT not in [body_of(r) for r in replies], replies
    assert user_texts(stack, phone.customer) == [f"hi {REPLACED}"]

    (empty,) = phone.send(wa.text_message(phone.number, "  \n "))
    assert body_of(empty) == EMPTY_TEXT
    refused = [e for e in log_events(store, phone.customer, want="message_refused") if e.type == "message_refused"]
    assert [e.data for e in refused] == [{"reason": "empty_message"}]


# --- Telegram ------------------------------------------------------------------------------------


def test_telegram_lone_surrogate_and_empty_message_get_answers_and_records(stack: Stack, providers: Providers, store: redis.Redis) -> None:
    user = Telegram(stack, providers, store)
    deep: Dict[str, Any] = {}
    for _ in range(200):
        deep = {"a": deep}
    assert user.post({"update_id": 1, "message": deep}).status_code == 400
    replies = user.send(tg.text_update(user.user_id, "hi \ud800"))
    assert APOLOGY_TEXT not in [r["text"] for r in replies], replies
    assert user_texts(stack, user.customer) == [f"hi {REPLACED}"]

    (empty,) = user.send(tg.text_update(user.user_id, " \t "))
    assert empty["text"] == EMPTY_TEXT
    refused = eventually(lambda: [e for e in log_events(store, user.customer, settle=1.0) if e.type == "message_refused"],
                         "the empty message's record")
    assert [e.data for e in refused] == [{"reason": "empty_message"}]


# --- rate limits and bounded queues (item 5) ------------------------------------------------------


def test_rest_flood_from_one_sender_gets_429s_and_every_admitted_message_an_answer(stack: Stack) -> None:
    sender = f"e2e-flood-{uuid.uuid4().hex[:8]}"
    start = time.monotonic()

    def one(i: int) -> Tuple[int, Optional[str], Any, float]:
        time.sleep(max(0.0, start + i / 50 - time.monotonic()))  # 200 messages at 50 a second
        sent = time.monotonic()
        response = requests.post(stack.rest_webhook, json={"sender": sender, "message": f"hello {i}"}, timeout=120)
        return response.status_code, response.headers.get("Retry-After"), response.json(), time.monotonic() - sent

    with ThreadPoolExecutor(max_workers=40) as pool:
        results = list(pool.map(one, range(200)))
    answered = [(body, took) for status, _, body, took in results if status == 200]
    limited = [after for status, after, _, _ in results if status == 429]
    assert len(answered) + len(limited) == 200 and limited and answered
    assert all(after and int(after) >= 1 for after in limited)
    assert not [body for body, _ in answered if APOLOGY_TEXT in texts(body)]  # no lock timeouts, no "sorry"
    assert max(took for _, took in answered) < 30  # was 118 s
    users = [e for e in tracker(stack, sender)["events"] if e["event"] == "user"]
    assert len(users) == len(answered)  # nothing handled that the caller was told was refused, nothing lost


def test_telegram_flood_is_paced_and_every_dropped_update_recorded(stack: Stack, providers: Providers, store: redis.Redis) -> None:
    user = Telegram(stack, providers, store)
    start = time.monotonic()
    statuses = []
    for i in range(100):  # 100 updates at 50 a second
        time.sleep(max(0.0, start + i / 50 - time.monotonic()))
        statuses.append(user.post(tg.text_update(user.user_id, f"hello {i}")).status_code)
    assert statuses == [200] * 100
    conversation = f"telegram:{user.user_id}"
    dropped = eventually(lambda: [e for e in log_events(store, conversation, settle=1.0) if e.type == "message_dropped"],
                         "message_dropped records")
    customer = eventually(lambda: user.customer, "the Telegram user's customer")

    def all_accounted() -> Optional[List[str]]:
        handled = [text for text in user_texts(stack, customer) if text.startswith("hello ")]
        return handled if len(handled) + len(dropped) == 100 else None

    handled = eventually(all_accounted, "every update handled or recorded as dropped", timeout=120)
    assert sorted(handled + [e.text for e in dropped], key=lambda t: int(t.split()[1])) == [f"hello {i}" for i in range(100)]
    assert [m["text"] for m in user.received()].count(SLOW_DOWN_TEXT) == 1


def test_whatsapp_flood_is_paced_and_every_dropped_message_recorded(stack: Stack, providers: Providers, store: redis.Redis) -> None:
    phone = WhatsApp(stack, providers, store)
    for i in range(40):
        assert phone.post(wa.text_message(phone.number, f"hello {i}")).status_code == 200
    conversation = f"whatsapp:{phone.number}"
    dropped = eventually(lambda: [e for e in log_events(store, conversation, settle=1.0) if e.type == "message_dropped"],
                         "message_dropped records")
    customer = eventually(lambda: phone.customer, "the WhatsApp number's customer")

    def all_accounted() -> Optional[List[str]]:
        handled = [text for text in user_texts(stack, customer) if text.startswith("hello ")]
        return handled if len(handled) + len(dropped) == 40 else None

    handled = eventually(all_accounted, "every message handled or recorded as dropped", timeout=120)
    assert len(handled) <= 31 and {e.data["reason"] for e in dropped} <= {"sender_rate", "queue_full"}
    assert [body_of(m) for m in phone.received()].count(SLOW_DOWN_TEXT) == 1
