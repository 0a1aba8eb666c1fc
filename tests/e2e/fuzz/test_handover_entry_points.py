"""Fuzzing issue 12's entry points on the running stack: the Rasa server's proactive endpoint, the
Chatwoot bridge's webhook, and the staff console's sign-in and API. Any request gets a 2xx or a
clean 4xx, quickly; refused input leaves no tracker, log record or handover behind; no process
logs a traceback."""

from __future__ import annotations

import copy
import re
import secrets
from typing import Any, Dict, Set, Tuple

import redis
import requests
from hypothesis import given
from hypothesis import strategies as st

from scripts.stack import Stack
from tests.e2e.fuzz.support import (
    LogTail, Tally, assert_answered, assert_nothing_written, edge_text, fuzz, header_value, huge_text, json_values, plain_text, raw_bodies,
    timed,
)
from tests.e2e.test_handover import PASSWORD, add_agent
from tests.fakes import chatwoot_api as cw

AUTHOR = {"role": "agent", "id": "fz", "name": "Fuzz"}


def new_conversation() -> str:
    return f"fz-{secrets.token_hex(8)}"


def changed(body: Dict[str, Any], key: str, value: Any) -> Dict[str, Any]:
    result = copy.deepcopy(body)
    if value is None:
        result.pop(key, None)
    else:
        result[key] = value
    return result


fields = st.sampled_from(["conversation_id", "text", "buttons", "author", "message_id", "channel", "control", "extra"])
field_values = st.one_of(json_values, edge_text, huge_text, st.just(None), st.just({"role": "agent", "id": "", "name": "x"}),
                         st.just([{"title": "<script>", "payload": "/x"}] * 11))


def test_the_proactive_endpoint_refuses_cleanly(stack: Stack, store: redis.Redis, log: LogTail) -> None:
    url = f"{stack.rasa_url}/webhooks/proactive/send"
    refused: Set[str] = set()
    tally = Tally("proactive", stack)

    @fuzz
    @given(kind=st.sampled_from(["changed", "changed", "json", "raw", "good"]), field=fields, value=field_values, body=json_values,
           raw=raw_bodies, token=st.sampled_from(["good"] * 4 + ["wrong", "missing", "garbage"]), garbage=st.one_of(plain_text, edge_text))
    def one(kind: str, field: str, value: Any, body: Any, raw: bytes, token: str, garbage: str) -> None:
        conversation = new_conversation()  # never a real conversation: a good request is a 404
        good = {"conversation_id": conversation, "text": "hello", "author": AUTHOR}
        payload = {"changed": lambda: changed(good, field, value), "json": lambda: body, "good": lambda: good}.get(kind)
        headers: Dict[str, Any] = {"Content-Type": "application/json"}
        value_sent = {"good": f"Bearer {stack.proactive_token}", "wrong": "Bearer guess", "garbage": garbage}.get(token)
        if value_sent is not None:
            headers["Authorization"] = header_value(value_sent)
        import json

        data = raw if payload is None else json.dumps(payload(), ensure_ascii=False).encode("utf-8", "surrogatepass")
        response, seconds = timed("POST", url, data=data, headers=headers)
        tally.count(response.status_code)
        assert_answered(response, seconds)
        assert response.status_code in (400, 401, 404, 413), (response.status_code, response.text[:300])
        refused.add(conversation)

    one()
    assert_nothing_written(store, log, refused)
    assert not [k for k in store.scan_iter("engage:handover:request:fz-*")]
    tally.write()
    tally.assert_quiet()


def test_the_chatwoot_webhook_refuses_cleanly(stack: Stack, store: redis.Redis, log: LogTail) -> None:
    url = f"{stack.rasa_url}/webhooks/chatwoot/webhook"
    untouched: Set[str] = set()
    tally = Tally("chatwoot", stack)
    keys = ["event", "id", "content", "message_type", "private", "account", "conversation"]

    @fuzz
    @given(kind=st.sampled_from(["changed", "changed", "json", "raw"]), key=st.sampled_from(keys), value=st.one_of(json_values, edge_text),
           body=json_values, raw=raw_bodies, token=st.sampled_from(["good"] * 3 + ["wrong", "missing", "garbage"]), garbage=edge_text)
    def one(kind: str, key: str, value: Any, body: Any, raw: bytes, token: str, garbage: str) -> None:
        account, conversation = 9, 10**8 + secrets.randbelow(10**8)
        event = cw.message_created(account, conversation, "hello", status="open")  # open: the bot never answers these
        if kind == "changed":
            event[key] = value
        params = {"good": cw.WEBHOOK_TOKEN, "wrong": "guess-0123456789abcdef", "garbage": garbage}.get(token)
        import json

        data = raw if kind == "raw" else json.dumps(body if kind == "json" else event, ensure_ascii=False).encode("utf-8", "surrogatepass")
        response, seconds = timed("POST", url, data=data, headers={"Content-Type": "application/json"},
                                  params=None if params is None else {"token": params.encode("utf-8", "surrogatepass")})
        tally.count(response.status_code)
        assert_answered(response, seconds)
        if response.status_code == 200:
            assert response.json()["status"] in ("ignored", "received"), response.text
            if response.json()["status"] == "received":
                return  # a changed field that still reads as a pending message (status is not fuzzed): answered
        untouched.add(f"chatwoot:{account}:{conversation}")

    one()
    assert_nothing_written(store, log, untouched)
    tally.write()
    tally.assert_quiet()


def test_the_console_refuses_cleanly(stack: Stack, store: redis.Redis) -> None:
    login = f"fz{secrets.token_hex(4)}"
    add_agent(stack, login, "Fuzz Agent")
    base = stack.console_url
    signed_in = requests.Session()
    page = signed_in.get(f"{base}/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = signed_in.post(f"{base}/login", data={"login": login, "password": PASSWORD, "csrf_token": token}, timeout=30)
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', answer.text).group(1)
    paths = ["/api/claim", "/api/presence", "/api/conversations/{c}/reply", "/api/conversations/{c}/notes",
             "/api/conversations/{c}/transfer", "/api/conversations/{c}/resolve", "/api/conversations/{c}/handback"]
    tally = Tally("console", stack)
    before = store.xlen("engage:events")

    @fuzz
    @given(path=st.sampled_from(paths), body=json_values, raw=raw_bodies, as_json=st.booleans(), csrf_sent=st.sampled_from(["good", "good", "none", "wrong"]),
           conversation=st.one_of(st.just("C-0000000000000000"), plain_text.filter(lambda t: t and "/" not in t and t not in (".", ".."))),
           form=st.dictionaries(st.sampled_from(["login", "password", "csrf_token"]), st.one_of(plain_text, edge_text, huge_text), max_size=3))
    def one(path: str, body: Any, raw: bytes, as_json: bool, csrf_sent: str, conversation: str, form: Dict[str, str]) -> None:
        import json
        from urllib.parse import quote

        headers: Dict[str, Any] = {"Content-Type": "application/json", "Accept": "application/json"}
        if csrf_sent != "none":
            headers["X-CSRF-Token"] = csrf if csrf_sent == "good" else "wrong"
        data = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass") if as_json else raw
        url = base + path.replace("{c}", quote(conversation.encode("utf-8", "surrogatepass"), safe=""))
        started = timed("POST", url, data=data, headers=headers, cookies=signed_in.cookies)
        response, seconds = started
        tally.count(response.status_code)
        assert_answered(response, seconds)
        allowed = (400, 403, 404, 409, 413) + ((200,) if path == "/api/presence" and body in ({"status": "online"}, {"status": "away"}, {"status": "heartbeat"}) else ())
        assert response.status_code in allowed, (url, response.status_code, response.text[:300])
        # Sign-in with any form: never a 5xx; without this session's CSRF token, refused.
        response, seconds = timed("POST", f"{base}/login", data={k: v.encode("utf-8", "surrogatepass") for k, v in form.items()})
        tally.count(response.status_code)
        assert_answered(response, seconds)
        assert response.status_code in (401, 403, 429), response.status_code

    one()
    new = [fields for _, fields in store.xrange("engage:events", min="-", max="+")[before:] if fields.get("source") == "staff"
           and fields.get("data", "").find(login) >= 0]
    assert not new, new[:3]  # nothing refused was logged as a staff decision
    tally.write()
    tally.assert_quiet()
