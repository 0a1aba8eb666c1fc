"""Fuzzing the portal channel: tokens signed with the test secret (and without it, expired, for
another audience or issuer, with missing or odd claims), bodies of every shape, repeated
message ids. Any request gets a 2xx or a clean 4xx, quickly; a refused one links no identity and
logs nothing; an accepted one is one turn in the tracker and the log, and a repeat is dropped."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any, Dict, Set, Tuple

import redis
import requests
from hypothesis import given
from hypothesis import strategies as st

from scripts.stack import Stack
from tests.e2e.conftest import CHANNEL_ENV
from tests.e2e.fuzz.support import (
    Fresh, LogTail, Tally, assert_answered, assert_nothing_written, assert_turn_recorded, customer_of, encoded,
    edge_text, encodings, expected_text, fresh_in, fuzz, header_value, json_scalars, json_values, message_texts, new_sender, ordinary,
    plain_text, raw_bodies, timed,
)

SECRET = CHANNEL_ENV["PORTAL_JWT_SECRET"]
AUDIENCE = CHANNEL_ENV["PORTAL_JWT_AUDIENCE"]
ISSUER = CHANNEL_ENV["PORTAL_JWT_ISSUER"]

FRESH_ACCOUNT = Fresh(lambda: f"fz-acct-{uuid.uuid4().hex[:10]}")
FRESH_USER = Fresh(lambda: f"u{uuid.uuid4().hex[:10]}")
FRESH_EMAIL = Fresh(lambda: f"fz-{uuid.uuid4().hex[:10]}@Example.COM")
FRESH_MESSAGE_ID = Fresh(lambda: uuid.uuid4().hex)

good_claims = st.fixed_dictionaries(
    {"sub": st.just(FRESH_USER), "account_id": st.just(FRESH_ACCOUNT), "aud": st.just(AUDIENCE), "iss": st.just(ISSUER),
     "iat": st.just(0), "exp": st.just(600)},  # iat and exp: seconds from now, set when sent
    optional={"email": st.just(FRESH_EMAIL), "role": st.one_of(st.just("admin"), json_scalars)},
)
claim_changes = st.one_of(
    st.tuples(st.just("exp"), st.one_of(st.sampled_from([-3600, -31, 10**10]), st.text(max_size=5), st.none())),
    st.tuples(st.just("iat"), st.sampled_from([3600, "yesterday", None])),
    st.tuples(st.just("aud"), st.one_of(st.just("another-app"), st.just([AUDIENCE, "x"]), st.just([]), json_scalars)),
    st.tuples(st.just("iss"), st.one_of(st.just("https://evil.example"), json_scalars)),
    st.tuples(st.just("sub"), st.one_of(json_values, st.just(""), st.just("a:b"), st.just("u" * 100))),
    st.tuples(st.just("account_id"), st.one_of(json_values, st.just(""), st.just(True), st.just(12345), st.just("acct with space"))),
    st.tuples(st.just("email"), st.one_of(st.just("not-an-email"), st.just("a@b"), json_values, st.just("x" * 300 + "@example.com"))),
    st.tuples(st.sampled_from(["-sub", "-exp", "-iat", "-aud", "-iss", "-account_id"]), st.none()),  # a claim left out
)
tokens = st.one_of(
    st.tuples(st.just("HS256"), good_claims),
    st.tuples(st.just("HS256"), good_claims),
    st.tuples(st.just("HS256"), st.builds(lambda c, change: {**c, change[0]: change[1]}, good_claims, claim_changes)),
    st.tuples(st.sampled_from(["wrong-secret", "HS512", "none"]), good_claims),
    st.tuples(st.just("garbage"), st.one_of(plain_text, edge_text, st.just("a.b.c"), st.just("e30.e30."))),
    st.tuples(st.sampled_from(["no-header", "basic", "empty-bearer"]), st.none()),
)

contexts = st.one_of(
    st.none(),
    st.fixed_dictionaries({}, optional={key: st.one_of(plain_text, st.none()) for key in ("product", "feature", "page", "app_version")}),
    st.dictionaries(st.sampled_from(["product", "page", "tenant", ""]), json_values, max_size=3),
    st.just({"page": "p" * 300}),
    json_values,
)
bodies = st.one_of(
    st.tuples(st.just("json"), st.fixed_dictionaries(
        {"message": message_texts},
        optional={"context": contexts, "message_id": st.one_of(st.just(FRESH_MESSAGE_ID), st.just(FRESH_MESSAGE_ID), json_scalars, st.just("m" * 200))},
    ), encodings),
    st.tuples(st.just("json"), st.fixed_dictionaries({"message": st.one_of(message_texts, json_values)}, optional={"extra": json_scalars, "sender": plain_text}), encodings),
    st.tuples(st.just("json"), json_values, encodings),
    st.tuples(st.just("raw"), raw_bodies, st.just("")),
)


def authorization(kind: str, claims: Any) -> Dict[str, bytes]:
    """The Authorization header as bytes (HTTP carries any; lone surrogates become bytes that are not UTF-8)."""
    return {name: header_value(value) for name, value in _authorization(kind, claims).items()}


def _authorization(kind: str, claims: Any) -> Dict[str, str]:
    if kind == "no-header":
        return {}
    if kind == "basic":
        return {"Authorization": "Basic dXNlcjpwYXNz"}
    if kind == "empty-bearer":
        return {"Authorization": "Bearer  "}
    if kind == "garbage":
        return {"Authorization": f"Bearer {claims}"}
    now = int(time.time())
    claims = dict(claims)
    for name in [k for k in claims if k.startswith("-")]:
        claims.pop(name)
        claims.pop(name[1:], None)
    for name in ("iat", "exp"):
        if isinstance(claims.get(name), int) and not isinstance(claims[name], bool):
            claims[name] = now + claims[name]
    key = "not-the-portal-secret-0123456789abcdef" if kind == "wrong-secret" else SECRET
    return {"Authorization": f"Bearer {sign(claims, key, {'none': 'none', 'HS512': 'HS512'}.get(kind, 'HS256'))}"}


def sign(claims: Dict[str, Any], key: str, algorithm: str) -> str:
    """A JWT over any claims (PyJWT's encode refuses some of the wrong ones we send)."""
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    signing_input = f"{part(json.dumps({'alg': algorithm, 'typ': 'JWT'}).encode())}.{part(json.dumps(claims).encode())}"
    if algorithm == "none":
        return signing_input + "."
    digest = hashlib.sha512 if algorithm == "HS512" else hashlib.sha256
    return f"{signing_input}.{part(hmac.new(key.encode(), signing_input.encode(), digest).digest())}"


def test_portal_answers_anything_and_writes_whole_turns_or_nothing(stack: Stack, store: redis.Redis, log: LogTail) -> None:
    url = f"{stack.rasa_url}/webhooks/portal/webhook"
    untouched: Set[str] = set()  # identity keys a refused request must not have created
    tally = Tally("portal", stack)

    @fuzz
    @given(token=tokens, body=bodies, repeat=st.booleans())
    def one(token: Tuple[str, Any], body: Tuple[str, Any, str], repeat: bool) -> None:
        found: Dict[int, Any] = {}
        kind, claims = token[0], fresh_in(token[1], found)
        body_kind, payload, how = body[0], fresh_in(body[1], found), body[2]
        headers = {"Content-Type": "application/json", **authorization(kind, claims)}
        data = payload if body_kind == "raw" else encoded(payload, how)
        response, seconds = timed("POST", url, data=data, headers=headers)
        tally.count(response.status_code)
        assert_answered(response, seconds)
        fresh = set(found.values())
        account, user, email = (claims.get(k) if isinstance(claims, dict) and isinstance(claims.get(k), str) else None for k in ("account_id", "sub", "email"))
        keys = set()
        if account in fresh and user in fresh:
            keys.add(f"engage:identity:portal:{account}:{user}")
        if email in fresh:
            keys.add(f"engage:identity:email:{email.lower()}")
        if response.status_code >= 400:
            assert response.json()["error"], response.text
            untouched.update(keys)
            return
        assert response.status_code == 200, response.text
        replies = response.json()
        assert isinstance(replies, list) and replies, replies
        assert kind == "HS256" and body_kind == "json" and ordinary(payload["message"]), (claims, payload)
        if not (account in fresh and user in fresh and (email is None or email in fresh)):
            return  # a customer other cases may share: nothing to tell apart
        customer = customer_of(store, f"portal:{account}:{user}")
        assert customer, "an accepted portal message linked no customer"
        expected = [expected_text(payload["message"])]
        assert_turn_recorded(stack, log, customer, expected)
        tally.turns_checked += 1
        if repeat and payload.get("message_id") in fresh:
            again, seconds = timed("POST", url, data=data, headers=headers)
            assert (again.status_code, again.json(), again.headers.get("X-Engage-Duplicate")) == (200, [], "1")
            assert_turn_recorded(stack, log, customer, expected)  # handled once

    try:
        one()
    finally:
        tally.write()
    tally.assert_quiet()
    assert_nothing_written(store, log, set(), untouched)
    headers = authorization("HS256", {"sub": "fz-after", "account_id": new_sender(), "aud": AUDIENCE, "iss": ISSUER, "iat": 0, "exp": 600})
    response, _ = timed("POST", url, json={"message": "hello"}, headers=headers)
    assert response.status_code == 200 and response.json(), response.text  # still serving


def test_a_token_that_is_not_utf8_is_refused(stack: Stack) -> None:
    """Found by this suite: the bytes reached jwt.decode as surrogate escapes (UnicodeEncodeError, 500)."""
    response = requests.post(
        f"{stack.rasa_url}/webhooks/portal/webhook", data=b'{"message": "hi"}',
        headers={"Content-Type": "application/json", "Authorization": b"Bearer \xe8"}, timeout=10,
    )
    assert response.status_code == 401, response.text
