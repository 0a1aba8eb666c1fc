"""EngageRestInput served by a real Sanic app, with a recording on_new_message callback."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any, AsyncIterator, List, Optional, Tuple

import aiohttp
import pytest
from rasa.core.run import _create_single_channel, create_http_input_channels

from analytics.schema import REPLY_FAILED
from bot.broker import RedisStreamEventBroker
from connectors.errors import ConnectorConfigError
from connectors.payload import PayloadLimits
from connectors.replies import APOLOGY_TEXT, REASON_AGENT_NOT_READY
from connectors.rest import EngageRestInput
from tests.connectors.support import Recorder, channel_app, new_app, post, read_stream, serving

WEBHOOK = "/webhooks/rest/webhook"
GOOD = {"sender": "cust-1", "message": "How do I invite my team?", "metadata": {"product": "docs"}}


@contextlib.asynccontextmanager
async def rest_channel(
    recorder: Recorder,
    redis_url: str,
    tmp_path: Path,
    channel: Optional[EngageRestInput] = None,
) -> AsyncIterator[Tuple[str, aiohttp.ClientSession, RedisStreamEventBroker]]:
    """The channel's blueprint on a real Sanic app whose (model-less) Rasa agent holds our broker."""
    async with channel_app(redis_url, tmp_path) as (app, broker, _):
        channel = channel or EngageRestInput(health_timeout=0.5)
        app.blueprint(channel.blueprint(recorder), url_prefix="/webhooks/rest")
        async with serving(app) as base, aiohttp.ClientSession() as session:
            yield base, session, broker


# (raw body or JSON payload, expected status, expected error code)
BAD_REQUESTS: List[Tuple[Any, int, str]] = [
    (b"not json", 400, "invalid_json"),
    (b"", 400, "invalid_json"),
    (b'{"sender": "a", "sender": "b", "message": "hi"}', 400, "invalid_json"),
    # Nested past connectors.payload.MAX_JSON_DEPTH: refused before json.loads, Rasa or the log recurse on it.
    (b'{"sender": "u", "message": "hi", "metadata": {"x": ' + b"[" * 600 + b"]" * 600 + b"}}", 400, "invalid_json"),
    ([GOOD], 400, "not_an_object"),
    ("hello", 400, "not_an_object"),
    ({"message": "hi"}, 400, "invalid_sender"),
    ({"sender": 42, "message": "hi"}, 400, "invalid_sender"),
    ({"sender": "", "message": "hi"}, 400, "invalid_sender"),
    ({"sender": "x" * 129, "message": "hi"}, 400, "invalid_sender"),
    ({"sender": "no spaces please", "message": "hi"}, 400, "invalid_sender"),
    ({"sender": "../../etc", "message": "hi"}, 400, "invalid_sender"),
    ({"sender": "u"}, 400, "invalid_message"),
    ({"sender": "u", "message": 12}, 400, "invalid_message"),
    ({"sender": "u", "message": None}, 400, "invalid_message"),
    ({"sender": "u", "message": ""}, 400, "empty_message"),
    ({"sender": "u", "message": " \n\t "}, 400, "empty_message"),
    ({"sender": "u", "message": "x" * 4097}, 413, "message_too_long"),
    ({"sender": "u", "message": "hi", "text": "hi", "recipient": 1}, 400, "unknown_fields"),
    ({"sender": "u", "message": "hi", "metadata": "product=docs"}, 400, "invalid_metadata"),
    ({"sender": "u", "message": "hi", "metadata": [1, 2]}, 400, "invalid_metadata"),
    ({"sender": "u", "message": "hi", "metadata": {"blob": "x" * 9000}}, 400, "metadata_too_large"),
    ({"sender": "u", "message": "hi", "input_channel": "whatsapp"}, 400, "invalid_input_channel"),
    # A customer's conversation id: REST callers name their own sender, so they may not name a customer.
    ({"sender": "C-0123456789abcdef", "message": "link my account"}, 403, "reserved_sender"),
    (b" " * (65 * 1024), 413, "body_too_large"),
]


async def send(session: aiohttp.ClientSession, url: str, body: Any) -> Tuple[int, Any]:
    if isinstance(body, bytes):
        return await post(session, url, raw=body)
    return await post(session, url, body)


async def test_health(redis_url: str, tmp_path: Path) -> None:
    async with rest_channel(Recorder(), redis_url, tmp_path) as (base, session, _):
        async with session.get(base + "/webhooks/rest/") as response:
            assert (response.status, await response.json()) == (200, {"status": "ok"})


async def test_start_up_warns_when_the_interaction_log_is_off(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with rest_channel(Recorder(), redis_url, tmp_path):
        pass
    assert "no RedisStreamEventBroker" not in caplog.text
    app = new_app()
    app.blueprint(EngageRestInput().blueprint(Recorder()), url_prefix="/webhooks/rest")
    async with serving(app):
        pass
    assert "no RedisStreamEventBroker" in caplog.text


async def test_a_good_message_reaches_rasa_and_replies_come_back(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder(replies=("Open Settings > Members.", "Anything else?"))
    async with rest_channel(recorder, redis_url, tmp_path) as (base, session, broker):
        status, body = await post(session, base + WEBHOOK, GOOD)
    assert status == 200
    assert body == [
        {"recipient_id": "cust-1", "text": "Open Settings > Members."},
        {"recipient_id": "cust-1", "text": "Anything else?"},
    ]
    [message] = recorder.calls
    assert (message.sender_id, message.text, message.input_channel, message.metadata) == (
        "cust-1",
        "How do I invite my team?",
        "rest",
        {"product": "docs"},
    )
    assert read_stream(redis_url) == []  # the recorder is not Rasa: nothing was tracked, nothing failed


@pytest.mark.parametrize("body,status,code", BAD_REQUESTS, ids=[c for _, _, c in BAD_REQUESTS])
async def test_bad_requests_never_reach_rasa(body: Any, status: int, code: str, redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with rest_channel(recorder, redis_url, tmp_path) as (base, session, _):
        got_status, got_body = await send(session, base + WEBHOOK, body)
    assert (got_status, got_body["error"]) == (status, code)
    assert got_body["message"]
    assert recorder.calls == []
    assert read_stream(redis_url) == []


async def test_rejections_are_explained(redis_url: str, tmp_path: Path) -> None:
    async with rest_channel(Recorder(), redis_url, tmp_path) as (base, session, _):
        extra = {"sender": "u", "message": "hi", "text": "x", "recipient": 1}
        status, body = await post(session, base + WEBHOOK, extra)
        assert (status, body["fields"]) == (400, ["recipient", "text"])
        assert "recipient, text" in body["message"]
        status, body = await post(session, base + WEBHOOK, {"sender": "u", "message": "y" * 5000})
        assert status == 413
        assert body["message"].startswith("Sorry, that message is too long") and "4096" in body["message"]
        async with session.post(base + WEBHOOK + "?stream=true", json=GOOD) as response:
            assert (response.status, (await response.json())["error"]) == (400, "stream_unsupported")


async def test_server_keeps_serving_after_200_rejections(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    async with rest_channel(recorder, redis_url, tmp_path) as (base, session, _):
        for i in range(200):
            body, status, _ = BAD_REQUESTS[i % len(BAD_REQUESTS)]
            assert (await send(session, base + WEBHOOK, body))[0] == status
        status, replies = await post(session, base + WEBHOOK, GOOD)
    assert status == 200 and replies[0]["text"] == recorder.replies[0]
    assert len(recorder.calls) == 1


async def test_large_and_chunked_bodies(redis_url: str, tmp_path: Path) -> None:
    async def chunked(data: bytes, size: int = 8192) -> AsyncIterator[bytes]:
        for start in range(0, len(data), size):
            yield data[start : start + size]

    good = json.dumps(GOOD).encode()
    recorder = Recorder()
    async with rest_channel(recorder, redis_url, tmp_path) as (base, session, _):
        # Declared too large: refused from the header, the body is never buffered.
        status, body = await post(session, base + WEBHOOK, raw=b"x" * (2 * 1024 * 1024))
        assert (status, body["error"]) == (413, "body_too_large")
        # No Content-Length (chunked): refused once the running total passes the limit.
        async with session.post(base + WEBHOOK, data=chunked(b" " * (200 * 1024))) as response:
            assert (response.status, (await response.json())["error"]) == (413, "body_too_large")
        async with session.post(base + WEBHOOK, data=chunked(good, size=7)) as response:
            assert response.status == 200
        assert (await post(session, base + WEBHOOK, GOOD))[0] == 200
    assert [m.text for m in recorder.calls] == [GOOD["message"]] * 2


async def test_no_reply_becomes_an_apology_and_a_reply_failed_record(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder(replies=())
    async with rest_channel(recorder, redis_url, tmp_path) as (base, session, broker):
        status, body = await post(session, base + WEBHOOK, GOOD)
        assert await broker.flush()
    assert (status, body) == (200, [{"recipient_id": "cust-1", "text": APOLOGY_TEXT}])
    [record] = read_stream(redis_url)
    assert (record.type, record.conversation_id, record.channel, record.text) == (
        REPLY_FAILED,
        "cust-1",
        "rest",
        GOOD["message"],
    )
    # The agent in this app has no model, and its action endpoint has nothing behind it.
    assert record.data["reason"] == REASON_AGENT_NOT_READY
    assert record.data["action_server"] == "down"
    assert record.data["message_id"] == recorder.calls[0].message_id
    assert record.metadata == {"product": "docs"}


async def test_a_handler_error_keeps_what_was_said_and_apologises(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder(replies=("Let me check.",), error=RuntimeError("tracker store down"))
    async with rest_channel(recorder, redis_url, tmp_path) as (base, session, broker):
        status, body = await post(session, base + WEBHOOK, GOOD)
        assert await broker.flush()
        # The server is still fine afterwards.
        recorder.error = None
        assert (await post(session, base + WEBHOOK, GOOD))[0] == 200
    assert (status, [m["text"] for m in body]) == (200, ["Let me check.", APOLOGY_TEXT])
    [record] = read_stream(redis_url)
    assert record.data["error"] == "RuntimeError: tracker store down"


async def test_a_client_that_gives_up_is_recorded_as_cancelled(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder(delay=30.0)
    async with rest_channel(recorder, redis_url, tmp_path) as (base, session, broker):
        with pytest.raises(asyncio.TimeoutError):
            await session.post(base + WEBHOOK, json=GOOD, timeout=aiohttp.ClientTimeout(total=0.5))
        # Sanic cancels the handler when the connection drops; the record is written on the way out.
        for _ in range(50):
            if broker.published:
                break
            await asyncio.sleep(0.05)
        assert await broker.flush()
    [record] = read_stream(redis_url)
    assert record.type == REPLY_FAILED
    assert (record.data["reason"], record.data["action_server"]) == ("cancelled", "not_probed")


async def test_a_duplicated_request_is_handled_twice(redis_url: str, tmp_path: Path) -> None:
    # REST carries no message id: a client retry is a new message, as with Rasa's own channel.
    recorder = Recorder()
    async with rest_channel(recorder, redis_url, tmp_path) as (base, session, _):
        first = await post(session, base + WEBHOOK, GOOD)
        second = await post(session, base + WEBHOOK, GOOD)
    assert first == second and first[0] == 200
    assert [m.text for m in recorder.calls] == [GOOD["message"]] * 2
    assert recorder.calls[0].message_id != recorder.calls[1].message_id


async def test_configured_limits_and_channels_apply(redis_url: str, tmp_path: Path) -> None:
    channel = EngageRestInput.from_credentials({"max_message_chars": 20, "allowed_input_channels": ["portal"]})
    recorder = Recorder()
    async with rest_channel(recorder, redis_url, tmp_path, channel) as (base, session, _):
        assert (await post(session, base + WEBHOOK, {"sender": "u", "message": "x" * 21}))[0] == 413
        status, _ = await post(session, base + WEBHOOK, {"sender": "u", "message": "hi", "input_channel": "portal"})
    assert status == 200 and recorder.calls[0].input_channel == "portal"


async def test_a_sender_who_sends_too_fast_gets_429_and_every_admitted_message_an_answer(redis_url: str, tmp_path: Path) -> None:
    # Issue 9, item 5: 200 messages at 50/s from one sender waited up to 118 s on Rasa's lock, and 12 got "sorry".
    limits = {"sender_per_minute": 60, "sender_burst": 5, "max_in_flight_per_sender": 2}
    channel = EngageRestInput.from_credentials({"rate_limits": limits})
    recorder = Recorder(delay=0.1)

    async with rest_channel(recorder, redis_url, tmp_path, channel) as (base, session, _):
        async def one(i: int) -> Tuple[int, Optional[str], Any]:
            await asyncio.sleep(i / 50)  # 50 a second, none waiting for the answers before
            async with session.post(base + WEBHOOK, json={"sender": "flood", "message": f"m{i}"}) as response:
                return response.status, response.headers.get("Retry-After"), await response.json()

        results = await asyncio.gather(*(one(i) for i in range(60)))
        other = await post(session, base + WEBHOOK, {"sender": "someone-else", "message": "hi"})
    answered = [body for status, _, body in results if status == 200]
    limited = [(after, body) for status, after, body in results if status == 429]
    assert len(answered) + len(limited) == 60 and 5 <= len(answered) <= 12, len(answered)
    assert all(body == [{"recipient_id": "flood", "text": recorder.replies[0]}] for body in answered)  # no apology
    assert all(after is not None and int(after) >= 1 and body["error"] == "rate_limited" for after, body in limited)
    assert len([m for m in recorder.calls if m.sender_id == "flood"]) == len(answered)
    assert other[0] == 200  # another sender is not held back


async def test_an_address_that_sends_too_fast_gets_429_behind_a_trusted_proxy_too(redis_url: str, tmp_path: Path) -> None:
    limits = {"ip_per_minute": 60, "ip_burst": 3, "trusted_proxies": ["127.0.0.1"]}
    channel = EngageRestInput.from_credentials({"rate_limits": limits})
    async with rest_channel(Recorder(), redis_url, tmp_path, channel) as (base, session, _):
        async def from_client(client: str, sender: str) -> int:
            headers = {"X-Forwarded-For": f"192.0.2.1, {client}"}  # the far end is the client's own claim
            async with session.post(base + WEBHOOK, json={"sender": sender, "message": "hi"}, headers=headers) as response:
                return response.status
        statuses = [await from_client("198.51.100.1", f"s{i}") for i in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert await from_client("198.51.100.2", "s9") == 200


def test_credentials_are_checked_at_start_up() -> None:
    assert EngageRestInput.from_credentials(None).limits == PayloadLimits()
    with pytest.raises(ConnectorConfigError, match="max_mesage_chars"):
        EngageRestInput.from_credentials({"max_mesage_chars": 10})
    with pytest.raises(ConnectorConfigError, match="max_message_chars"):
        EngageRestInput.from_credentials({"max_message_chars": 0})
    with pytest.raises(ConnectorConfigError, match="allowed_input_channels"):
        EngageRestInput.from_credentials({"allowed_input_channels": "portal"})
    with pytest.raises(ConnectorConfigError, match="allowed_input_channels"):
        EngageRestInput.from_credentials({"allowed_input_channels": ["Not A Channel!"]})
    with pytest.raises(ConnectorConfigError, match="health_timeout"):
        EngageRestInput.from_credentials({"health_timeout": -1})
    with pytest.raises(ConnectorConfigError, match="expected a mapping of options, got str"):
        EngageRestInput.from_credentials("max_message_chars: 10")  # type: ignore[arg-type]
    built = EngageRestInput.from_credentials({"max_message_chars": 100, "allowed_input_channels": ["portal"], "health_timeout": 2})
    assert built.limits.max_message_chars == 100 and built.limits.max_body_bytes == PayloadLimits().max_body_bytes
    assert built.allowed_input_channels == {"portal"} and built.health_timeout == 2.0


def test_rasa_builds_it_from_credentials_yml(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.yml"
    credentials.write_text("connectors.rest.EngageRestInput:\n  max_message_chars: 4096\n")
    [channel] = create_http_input_channels(None, str(credentials))
    assert isinstance(channel, EngageRestInput)
    assert channel.url_prefix() == "rest" and channel.limits.max_message_chars == 4096
    assert isinstance(_create_single_channel("connectors.rest.EngageRestInput", None), EngageRestInput)

