"""The portal channel on a real Sanic app: JWT checks (HS256, RS256), in-use context, one customer, bad input."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Optional, Tuple

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.identity import IdentityResolver
from analytics.customers import CUSTOMER_ID, Identity
from connectors.dedup import Deduplicator
from connectors.errors import ConnectorConfigError, RequestRejected
from connectors.portal import PortalInput
from tests.connectors.support import Recorder, channel_app, read_stream, serving

SECRET = "portal-test-secret-that-is-long-enough-0123456789"
AUDIENCE, ISSUER = "engage-chat", "https://portal.quillstack.example"
CONTEXT = {"product": "insights", "feature": "export", "page": "/insights/d/42", "app_version": "5.2.0"}


def token(key: Any = SECRET, algorithm: str = "HS256", **overrides: Any) -> str:
    now = int(time.time())
    claims: Dict[str, Any] = {"sub": "u-17", "account_id": "acme", "email": "Dana@Acme.example", "role": "admin",
                              "aud": AUDIENCE, "iss": ISSUER, "iat": now, "exp": now + 300}
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm=algorithm)


def hs256_with(secret: bytes) -> str:
    """Sign by hand: PyJWT itself refuses to use a PEM key as an HMAC secret."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"sub": "u-1", "account_id": "acme", "aud": AUDIENCE, "iss": ISSUER, "iat": now, "exp": now + 300}
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@contextlib.asynccontextmanager
async def portal(recorder: Recorder, redis_url: str, tmp_path: Path, channel: Optional[PortalInput] = None) -> AsyncIterator[Tuple[str, aiohttp.ClientSession, IdentityResolver]]:
    channel = channel or PortalInput(key=SECRET, algorithm="HS256", audience=AUDIENCE, issuer=ISSUER)
    async with channel_app(redis_url, tmp_path) as (app, _, resolver):
        channel.resolver = resolver
        channel.deduplicator = Deduplicator(resolver)
        app.blueprint(channel.blueprint(recorder), url_prefix="/webhooks/portal")
        async with serving(app) as base, aiohttp.ClientSession() as session:
            yield f"{base}/webhooks/portal/webhook", session, resolver


async def send(session: aiohttp.ClientSession, url: str, body: Any, bearer: Optional[str], raw: Optional[bytes] = None) -> Tuple[int, Any]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    kwargs: Dict[str, Any] = {"data": raw, "headers": {**headers, "Content-Type": "application/json"}} if raw is not None else {"json": body, "headers": headers}
    async with session.post(url, **kwargs) as answer:
        return answer.status, await answer.json(content_type=None)


async def test_a_signed_message_reaches_rasa_with_its_context_as_one_customer(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder(replies=("Thanks!",))
    async with portal(recorder, redis_url, tmp_path) as (url, session, resolver):
        status, replies = await send(session, url, {"message": "the export button does nothing", "context": CONTEXT}, token())
        assert status == 200 and replies[0]["text"] == "Thanks!"
        status, _ = await send(session, url, {"message": "still broken"}, token())
        assert status == 200
        customer = await resolver.directory.owner(Identity.of("portal", "acme:u-17"))
        assert await resolver.directory.owner(Identity.of("email", "dana@acme.example")) == customer
    first, second = recorder.calls
    assert CUSTOMER_ID.match(first.sender_id) and first.sender_id == second.sender_id == customer
    assert first.input_channel == "portal"
    assert first.metadata == {**CONTEXT, "portal": {"account_id": "acme", "user_id": "u-17", "role": "admin"}}


async def test_rs256_tokens_are_checked_with_the_public_key(redis_url: str, tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    channel = PortalInput.from_credentials({"jwt_algorithm": "RS256", "jwt_public_key": public_pem, "audience": AUDIENCE, "issuer": ISSUER})
    recorder = Recorder()
    async with portal(recorder, redis_url, tmp_path, channel) as (url, session, _):
        assert (await send(session, url, {"message": "hi"}, token(private, "RS256")))[0] == 200
        # An HS256 token signed with the public key as its secret (the classic confusion) is refused.
        assert (await send(session, url, {"message": "hi"}, hs256_with(public_pem.encode())))[0] == 401
        assert (await send(session, url, {"message": "hi"}, token(SECRET)))[0] == 401
    assert len(recorder.calls) == 1


@pytest.mark.parametrize(
    "bearer, status, code",
    [
        (None, 401, "missing_token"),
        ("", 401, "missing_token"),
        ("not.a.jwt", 401, "invalid_token"),
        (token(key="another-secret-that-is-also-long-enough-000"), 401, "invalid_token"),
        (token(exp=int(time.time()) - 3600), 401, "token_expired"),
        (token(aud="someone-else"), 403, "token_not_for_us"),
        (token(iss="https://evil.example"), 403, "token_not_for_us"),
        (token(iat=None), 401, "invalid_token"),
        (token(account_id=None), 403, "invalid_claims"),
        (token(email="not an email"), 403, "invalid_claims"),
        (jwt.encode({"sub": "u", "account_id": "a", "aud": AUDIENCE, "iss": ISSUER, "iat": 1, "exp": 9999999999}, None, algorithm="none"), 401, "invalid_token"),
        (token(exp=int(time.time()) + 365 * 24 * 3600), 401, "token_lifetime_too_long"),
        (token(iat=int(time.time()) - 7200, exp=int(time.time()) + 300), 401, "token_lifetime_too_long"),
    ],
    ids=["no-header", "empty", "garbage", "wrong-key", "expired", "audience", "issuer", "no-iat", "no-account", "bad-email", "alg-none",
         "lives-a-year", "issued-for-2h"],
)
async def test_bad_tokens_are_refused_and_nothing_reaches_rasa_or_the_log(redis_url: str, tmp_path: Path, bearer: Optional[str], status: int, code: str) -> None:
    recorder = Recorder()
    async with portal(recorder, redis_url, tmp_path) as (url, session, _):
        got, body = await send(session, url, {"message": "hi", "context": CONTEXT}, bearer)
    assert (got, body["error"]) == (status, code)
    assert recorder.calls == [] and read_stream(redis_url) == []


@pytest.mark.parametrize(
    "body, raw, status, code",
    [
        (None, b"{not json", 400, "invalid_json"),
        ([], None, 400, "not_an_object"),
        ({"message": "hi", "sender": "x"}, None, 400, "unknown_fields"),
        ({"message": "x" * 5000}, None, 413, "message_too_long"),
        ({"message": "hi", "context": {"product": "x" * 300}}, None, 400, "invalid_context"),
        ({"message": "hi", "context": {"browser": "chrome"}}, None, 400, "invalid_context"),
        ({"message": "hi", "context": "insights"}, None, 400, "invalid_context"),
        (None, b'{"message": "' + b"y" * 70_000 + b'"}', 413, "body_too_large"),
    ],
    ids=["malformed", "list", "unknown-field", "too-long", "long-context", "unknown-context", "context-not-object", "oversized"],
)
async def test_bad_bodies_are_refused_with_the_right_status(redis_url: str, tmp_path: Path, body: Any, raw: Optional[bytes], status: int, code: str) -> None:
    recorder = Recorder()
    async with portal(recorder, redis_url, tmp_path) as (url, session, _):
        got, answer = await send(session, url, body, token(), raw=raw)
        assert (got, answer["error"]) == (status, code)
        assert (await send(session, url, {"message": "and now?"}, token()))[0] == 200  # still serving
    assert [m.text for m in recorder.calls] == ["and now?"]


async def test_a_token_that_is_not_utf8_is_refused_not_a_500(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with portal(recorder, redis_url, tmp_path) as (url, session, _):
        # By hand: aiohttp sends header values as UTF-8, and a broken client sends any bytes.
        reader, writer = await asyncio.open_connection(*url.split("/")[2].split(":"))
        body = b'{"message": "hi"}'
        writer.write(b"POST /webhooks/portal/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer \xe8\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        status_line = await reader.readline()
        writer.close()
        assert status_line.split()[1] == b"401", status_line
    assert recorder.calls == []
    with pytest.raises(RequestRejected) as refused:
        PortalInput(key=SECRET, algorithm="HS256", audience=AUDIENCE, issuer=ISSUER).verify("Bearer \udce8")
    assert (refused.value.status, refused.value.code) == (401, "invalid_token")


async def test_token_lifetime_is_capped_at_an_hour_unless_configured(redis_url: str, tmp_path: Path) -> None:
    now = int(time.time())
    hour, day = token(iat=now, exp=now + 3600), token(iat=now, exp=now + 24 * 3600)
    recorder = Recorder()
    async with portal(recorder, redis_url, tmp_path) as (url, session, _):
        assert (await send(session, url, {"message": "an hour"}, hour))[0] == 200
        assert (await send(session, url, {"message": "a day"}, day))[0] == 401
    longer = PortalInput.from_credentials({"jwt_secret": SECRET, "audience": AUDIENCE, "issuer": ISSUER, "max_token_lifetime": 24 * 3600})
    async with portal(recorder, redis_url, tmp_path, longer) as (url, session, _):
        assert (await send(session, url, {"message": "a day"}, day))[0] == 200
    assert [m.text for m in recorder.calls] == ["an hour", "a day"]
    with pytest.raises(ConnectorConfigError, match="max_token_lifetime"):
        PortalInput.from_credentials({"jwt_secret": SECRET, "audience": AUDIENCE, "issuer": ISSUER, "max_token_lifetime": 0})


async def test_a_portal_user_who_sends_too_fast_gets_429_with_retry_after(redis_url: str, tmp_path: Path) -> None:
    channel = PortalInput.from_credentials({"jwt_secret": SECRET, "audience": AUDIENCE, "issuer": ISSUER,
                                            "rate_limits": {"sender_per_minute": 60, "sender_burst": 2}})
    recorder = Recorder()
    async with portal(recorder, redis_url, tmp_path, channel) as (url, session, _):
        statuses = [(await send(session, url, {"message": f"m{i}"}, token()))[0] for i in range(3)]
        async with session.post(url, json={"message": "again"}, headers={"Authorization": f"Bearer {token()}"}) as answer:
            assert (answer.status, answer.headers["Retry-After"], (await answer.json())["error"]) == (429, "1", "rate_limited")
        assert (await send(session, url, {"message": "hi"}, token(sub="u-18")))[0] == 200  # another user
    assert statuses == [200, 200, 429]
    assert [m.text for m in recorder.calls] == ["m0", "m1", "hi"]


async def test_lone_surrogates_reach_rasa_as_replacement_characters(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with portal(recorder, redis_url, tmp_path) as (url, session, _):
        raw = b'{"message": "hi \\ud800", "context": {"page": "/p\\udfff"}}'
        assert (await send(session, url, None, token(), raw=raw))[0] == 200
    (message,) = recorder.calls
    assert message.text == "hi \ufffd" and message.metadata["page"] == "/p\ufffd"


async def test_a_retried_message_id_is_answered_once(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with portal(recorder, redis_url, tmp_path) as (url, session, _):
        for _ in range(3):
            status, _ = await send(session, url, {"message": "hello", "message_id": "m-1"}, token())
            assert status == 200
    assert len(recorder.calls) == 1


def test_credentials_name_what_is_missing() -> None:
    with pytest.raises(ConnectorConfigError, match=r"missing audience \(set PORTAL_JWT_AUDIENCE\), issuer \(set PORTAL_JWT_ISSUER\)"):
        PortalInput.from_credentials({"jwt_secret": SECRET})
    with pytest.raises(ConnectorConfigError, match=r"missing jwt_secret \(set PORTAL_JWT_SECRET\)"):
        PortalInput.from_credentials({"audience": AUDIENCE, "issuer": ISSUER})
    with pytest.raises(ConnectorConfigError, match="at least 32 bytes"):
        PortalInput.from_credentials({"jwt_secret": "short", "audience": AUDIENCE, "issuer": ISSUER})
    with pytest.raises(ConnectorConfigError, match="jwt_algorithm must be one of"):
        PortalInput.from_credentials({"jwt_secret": SECRET, "jwt_algorithm": "none", "audience": AUDIENCE, "issuer": ISSUER})
