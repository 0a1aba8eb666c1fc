"""Bad input at the REST channel of the running stack: clean 4xx, nothing logged, still serving."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest
import redis
import requests

from analytics.schema import EVENTS_STREAM
from scripts.stack import Stack
from tests.e2e.conftest import Replies, post, tracker

BAD_SENDER = "e2e-bad-input"

CASES = [
    ("invalid JSON", None, b'{"sender": "e2e-bad-input", "message": ', 400),
    ("not an object", ["e2e-bad-input", "hi"], None, 400),
    ("empty message", {"sender": BAD_SENDER, "message": ""}, None, 400),
    ("whitespace only", {"sender": BAD_SENDER, "message": " \n\t  "}, None, 400),
    ("oversized message", {"sender": BAD_SENDER, "message": "a" * 5000}, None, 413),
    ("message not a string", {"sender": BAD_SENDER, "message": {"text": "hi"}}, None, 400),
    ("missing sender", {"message": "hi"}, None, 400),
    ("sender with odd characters", {"sender": "bad sender/../x", "message": "hi"}, None, 400),
    ("sender too long", {"sender": "x" * 500, "message": "hi"}, None, 400),
    ("unknown field", {"sender": BAD_SENDER, "message": "hi", "is_admin": True}, None, 400),
    ("metadata not an object", {"sender": BAD_SENDER, "message": "hi", "metadata": [1]}, None, 400),
    ("spoofed channel", {"sender": BAD_SENDER, "message": "hi", "input_channel": "whatsapp"}, None, 400),
    ("huge body", None, json.dumps({"sender": BAD_SENDER, "message": "hi", "metadata": {"x": "y" * 200_000}}).encode(), 413),
]


@pytest.mark.parametrize("name, payload, raw, status", CASES, ids=[c[0] for c in CASES])
def test_bad_request_gets_a_clear_error(stack: Stack, name: str, payload: Any, raw: Any, status: int) -> None:
    response = post(stack, payload, raw)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] and body["message"]


def test_nothing_from_bad_requests_reaches_rasa_or_the_log(stack: Stack, store: redis.Redis, chat: Callable[..., Replies]) -> None:
    for _, payload, raw, _ in CASES:
        post(stack, payload, raw)
    assert not [e for e in tracker(stack, BAD_SENDER)["events"] if e["event"] == "user"]
    entries = store.xrange(EVENTS_STREAM)
    assert not [f for _, f in entries if f.get("conversation_id") == BAD_SENDER]
    # ...and the server still serves.
    assert chat("e2e-after-bad-input", "hello")


def test_duplicated_message_is_answered_each_time(stack: Stack, chat: Callable[..., Replies], sender: str) -> None:
    first = chat(sender, "hello")
    second = chat(sender, "hello")
    assert first and second


def test_api_needs_the_token(stack: Stack) -> None:
    url = f"{stack.rasa_url}/conversations/anyone/tracker"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, params={"token": "wrong"}, timeout=10).status_code == 401
    assert requests.get(url, params={"token": stack.auth_token}, timeout=10).status_code == 200
