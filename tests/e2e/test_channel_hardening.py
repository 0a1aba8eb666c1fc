"""Hardening of the channels (issue 9) against the running stack: deep JSON, wrong shapes, odd ids,
lone surrogates, empty messages and long-lived portal tokens, on REST, the portal, WhatsApp and Telegram."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any, Dict

import jwt
import redis
import requests

from connectors.messages import APOLOGY_TEXT, EMPTY_TEXT
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
